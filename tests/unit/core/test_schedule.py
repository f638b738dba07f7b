"""core.schedule: the systemd units and the cron line of `orch backup schedule`."""

from __future__ import annotations

import pytest

from orchestrator.core import schedule as sc

CMD = ["/opt/orch/bin/orch", "backup", "main", "--to", "s3://b-1/orch", "--keep", "7"]


@pytest.mark.parametrize(
    ("every", "calendar", "cron"),
    [
        ("hourly", "hourly", "0 * * * *"),
        ("daily", "*-*-* 03:00:00", "0 3 * * *"),
        ("weekly", "Sun *-*-* 03:00:00", "0 3 * * 0"),
        ("2:30", "*-*-* 02:30:00", "30 2 * * *"),
        ("23:05", "*-*-* 23:05:00", "5 23 * * *"),
    ],
)
def test_every_maps_to_systemd_and_cron(every: str, calendar: str, cron: str) -> None:
    assert sc.parse_every(every) == (calendar, cron)


@pytest.mark.parametrize("every", ["24:00", "7", "every day", "12:60", ""])
def test_bad_every_is_refused(every: str) -> None:
    with pytest.raises(ValueError, match="hourly, daily, weekly or HH:MM"):
        sc.parse_every(every)


def test_units_run_the_same_command_with_the_home_and_no_secret() -> None:
    spec = sc.Schedule(
        "orch-backup-main", CMD, "/srv/orch home", "02:30", {"AWS_ENDPOINT_URL": "http://h:9000"}
    )
    service = spec.service()
    assert "ExecStart=/opt/orch/bin/orch backup main --to s3://b-1/orch --keep 7" in service
    assert 'Environment="ORCH_HOME=/srv/orch home"' in service
    assert 'Environment="AWS_ENDPOINT_URL=http://h:9000"' in service
    assert "Type=oneshot" in service and "EnvironmentFile" not in service
    timer = spec.timer()
    assert "OnCalendar=*-*-* 02:30:00" in timer and "Persistent=true" in timer
    assert "WantedBy=timers.target" in timer
    assert not any(key in service for key in sc.SECRET_ENV)


def test_an_env_file_is_named_not_copied() -> None:
    spec = sc.Schedule("u", CMD, "/h", "daily", {}, "/root/.config/orch/s3.env")
    assert "EnvironmentFile=/root/.config/orch/s3.env" in spec.service()
    cron = spec.cron_line()
    assert cron.startswith("0 3 * * * ORCH_HOME=/h sh -c ")
    assert ". /root/.config/orch/s3.env" in cron and "exec /opt/orch/bin/orch backup" in cron


def test_cron_escapes_percent_and_systemd_quotes_values() -> None:
    spec = sc.Schedule("u", CMD, "/h%x", "hourly", {"AWS_PROFILE": 'a"b'})
    assert "/h\\%x" in spec.cron_line()
    assert 'Environment="ORCH_HOME=/h%%x"' in spec.service()
    assert 'Environment="AWS_PROFILE=a\\"b"' in spec.service()


def test_unit_names() -> None:
    assert sc.unit_name(["main", "rescue"]) == "orch-backup-main-rescue"
    assert sc.unit_name(None) == "orch-backup-all"
