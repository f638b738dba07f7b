"""Profile and fleet models: names, ports, addresses (orchestrator/profile.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.core.model import (
    DEFAULT_BIND_IP,
    Fleet,
    Profile,
    name_problem,
    validate_base,
    validate_ip,
)
from orchestrator.core.ports import DEFAULT_PUBLISH, Role


def error_of(**fields) -> str:
    with pytest.raises(ValidationError) as info:
        Profile(**fields)
    return str(info.value)


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["main", "rescue", "a", "0", "dev-2", "work_bot", "a" * 64])
def test_valid_names_have_no_problem(name: str) -> None:
    assert name_problem(name) is None
    assert Profile(name=name, port=18789).name == name


def test_an_empty_name_is_refused_as_empty() -> None:
    assert name_problem("") == "a profile name cannot be empty"


def test_a_65_character_name_is_refused_with_its_length_and_the_limit() -> None:
    problem = name_problem("a" * 65)
    assert "65 characters long" in problem and "at most 64" in problem


def test_dot_dot_is_refused_because_dots_are_not_allowed() -> None:
    problem = name_problem("..")
    assert "'..' is not a valid profile name" in problem
    assert "'.' is not allowed" in problem


@pytest.mark.parametrize("name", ["a/b", "../etc", "/main", "a\\b"])
def test_a_name_with_a_slash_is_refused_as_a_path(name: str) -> None:
    assert "cannot contain a slash" in name_problem(name)


def test_an_uppercase_name_is_refused_with_its_lowercase_form() -> None:
    problem = name_problem("Main")
    assert "uppercase" in problem and "'main'" in problem


@pytest.mark.parametrize(("name", "first"), [("-x", "'-'"), ("_x", "'_'")])
def test_a_name_starting_with_a_dash_or_underscore_says_so(name: str, first: str) -> None:
    assert f"it starts with {first}" in name_problem(name)


@pytest.mark.parametrize("name", ["all", "none", "host", "bridge"])
def test_reserved_words_are_refused_as_reserved(name: str) -> None:
    assert f"'{name}' is reserved" in name_problem(name)


@pytest.mark.parametrize("name", ["main\n", "main ", " main", "ma in", "mäin"])
def test_whitespace_and_non_ascii_are_refused(name: str) -> None:
    # "main\n" in particular: a regex `$` alone would accept the trailing newline.
    assert name_problem(name) is not None
    with pytest.raises(ValidationError):
        Profile(name=name, port=18789)


def test_the_model_refuses_an_invalid_name_with_the_same_message() -> None:
    assert "uppercase" in error_of(name="Main", port=18789)


# --- ports ------------------------------------------------------------------------------


@pytest.mark.parametrize("port", [1024, 18789, 65425])
def test_bases_from_1024_to_65425_are_valid(port: int) -> None:
    assert validate_base(port) == port
    assert Profile(name="main", port=port).port == port


@pytest.mark.parametrize("port", [1, 41, 1023])
def test_a_privileged_base_is_refused_unless_explicitly_allowed(port: int) -> None:
    assert "below 1024" in error_of(name="main", port=port)
    assert "allow_privileged_ports: true" in error_of(name="main", port=port)
    assert Profile(name="main", port=port, allow_privileged_ports=True).port == port


def test_base_65426_is_too_high_because_its_cdp_range_overflows() -> None:
    with pytest.raises(ValueError) as info:
        validate_base(65426)
    message = str(info.value)
    assert "too high" in message and "65536" in message and "65425" in message


@pytest.mark.parametrize("port", [0, -1])
def test_base_below_1_is_out_of_range(port: int) -> None:
    with pytest.raises(ValueError, match=r"out of range: use 1\.\.65425"):
        validate_base(port)


def test_the_model_refuses_a_base_past_65425() -> None:
    assert "the highest usable base is 65425" in error_of(name="main", port=65426)


def test_a_port_that_is_not_a_number_is_refused() -> None:
    assert "port" in error_of(name="main", port="abc")


# --- addresses --------------------------------------------------------------------------


def test_bind_ip_defaults_to_loopback() -> None:
    assert Profile(name="main", port=18789).bind_ip == DEFAULT_BIND_IP == "127.0.0.1"


@pytest.mark.parametrize("value", ["localhost", "999.1.1.1", "127.0.0.1:80", "", "1.2.3"])
def test_a_bind_ip_that_is_not_an_ip_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="is not an IP address"):
        validate_ip(value)
    assert "is not an IP address" in error_of(name="main", port=18789, bind_ip=value)


@pytest.mark.parametrize(("given", "stored"), [("::0", "::"), ("0:0::1", "::1")])
def test_bind_ip_is_stored_in_canonical_form(given: str, stored: str) -> None:
    assert Profile(name="main", port=18789, bind_ip=given).bind_ip == stored


# --- other fields -----------------------------------------------------------------------


def test_publish_defaults_to_gateway_browser_and_canvas() -> None:
    assert Profile(name="main", port=18789).publish == DEFAULT_PUBLISH
    assert DEFAULT_PUBLISH == (Role.GATEWAY, Role.BROWSER, Role.CANVAS)


def test_publish_is_kept_in_role_order_whatever_the_input_order() -> None:
    profile = Profile(name="main", port=18789, publish=["cdp", "gateway"])
    assert profile.publish == (Role.GATEWAY, Role.CDP)


def test_a_role_published_twice_is_refused() -> None:
    assert "listed twice" in error_of(name="main", port=18789, publish=["gateway", "gateway"])


def test_an_unknown_role_is_refused() -> None:
    assert "publish" in error_of(name="main", port=18789, publish=["ssh"])


def test_a_profile_cannot_rescue_itself() -> None:
    assert "cannot rescue itself" in error_of(name="main", port=18789, rescues="main")


def test_unknown_fields_are_refused() -> None:
    assert "Extra inputs are not permitted" in error_of(name="main", port=18789, colour="red")


def test_the_profile_key_of_the_fleet_is_its_name() -> None:
    fleet = Fleet.model_validate({"profiles": {"main": {"port": 18789, "name": "other"}}})
    assert fleet.profiles["main"].name == "main"


def test_the_fleet_document_leaves_defaults_out() -> None:
    fleet = Fleet.model_validate({"profiles": {"main": {"port": 18789}}})
    assert fleet.to_document() == {
        "version": 1,
        "project": "orch",
        "profiles": {"main": {"port": 18789}},
    }


def test_an_unknown_profile_names_the_known_ones_and_how_to_create_it() -> None:
    from orchestrator.errors import UnknownProfileError

    fleet = Fleet.model_validate({"profiles": {"main": {"port": 18789}}})
    with pytest.raises(UnknownProfileError) as info:
        fleet.get("rescue")
    assert "known: main" in info.value.message
    assert info.value.hint == "create it with `orch setup rescue`"


# --- hardening: CPU limit and read-only root ---------------------------------------------


def test_a_profile_is_hardened_by_default_and_the_fleet_file_stays_short() -> None:
    profile = Profile(name="main", port=18789)
    assert (profile.cpus, profile.read_only_root) == (1.0, True)
    doc = Fleet(profiles={"main": profile}).to_document()["profiles"]["main"]
    assert "cpus" not in doc and "read_only_root" not in doc


@pytest.mark.parametrize("cpus", [0, 0.01, 0.5, 1.5, 2, "1.5"])
def test_a_cpu_limit_from_0_01_up_or_0_for_none_is_accepted(cpus) -> None:
    assert Profile(name="main", port=18789, cpus=cpus).cpus == float(cpus)


def test_a_cpu_limit_docker_would_refuse_is_refused_saying_what_it_accepts() -> None:
    problem = error_of(name="main", port=18789, cpus=0.005)
    assert "cpus 0.005 is below 0.01" in problem and "use 0 for no limit" in problem


@pytest.mark.parametrize("cpus", [-1, float("nan"), float("inf"), 2000, "many"])
def test_a_negative_infinite_huge_or_non_numeric_cpu_limit_is_refused(cpus) -> None:
    assert "cpus" in error_of(name="main", port=18789, cpus=cpus)
