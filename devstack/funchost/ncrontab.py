"""Timer schedules as the Functions host reads them: six-field NCRONTAB or a TimeSpan.

NCRONTAB is ``second minute hour day month day-of-week``; each field takes ``*``,
numbers, names (JAN, MON), lists, ranges and steps. Like NCrontab (the library the
host uses) a restricted day-of-month *and* day-of-week must both match, unlike
Vixie cron's "either". A ``hh:mm:ss`` TimeSpan means "every interval since start".
All times are UTC, the host's default when WEBSITE_TIME_ZONE is not set.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Union

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

# (name, low, high, names mapped to numbers)
_FIELDS: list[tuple[str, int, int, dict[str, int]]] = [
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    ("day-of-week", 0, 6, {name: i for i, name in enumerate(_DAYS)}),
]

# Enough steps to walk several years of month/day skips; a schedule that needs more
# (e.g. 30 February) never fires.
_MAX_STEPS = 200_000


class ScheduleError(ValueError):
    """A schedule the host would refuse, with a message naming the bad field."""


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise ScheduleError(f"{name} field: {text!r} is not a number")
    number = int(text)
    if name == "day-of-week" and number == 7:
        number = 0  # Sunday, as most crontab dialects accept
    if not low <= number <= high:
        raise ScheduleError(f"{name} field: {number} is outside {low}-{high}")
    return number


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for element in text.split(","):
        range_text, _, step_text = element.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{name} field: bad step in {element!r}")
            step = int(step_text)
        if range_text == "*":
            start, end = low, high
        elif "-" in range_text:
            first, _, last = range_text.partition("-")
            start, end = _value(first, name, low, high, names), _value(last, name, low, high, names)
            if end < start:
                raise ScheduleError(f"{name} field: range {element!r} runs backwards")
        else:
            start = _value(range_text, name, low, high, names)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed six-field NCRONTAB expression."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first firing strictly after ``moment`` (an aware datetime)."""
        t = moment.astimezone(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=1)
        for _ in range(_MAX_STEPS):
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
            elif t.day not in self.days or (t.weekday() + 1) % 7 not in self.weekdays:
                t = t.replace(hour=0, minute=0, second=0) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + dt.timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += dt.timedelta(seconds=1)
            else:
                return t
        raise ScheduleError(f"schedule {self.expression!r} never fires")


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule such as ``00:05:00``: fires every interval."""

    expression: str
    interval: dt.timedelta

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(dt.timezone.utc) + self.interval


Schedule = Union[CronSchedule, IntervalSchedule]

_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2}))?")


def parse_schedule(expression: str) -> Schedule:
    """Parse a timer trigger's schedule; raise ScheduleError saying what is wrong."""
    text = expression.strip()
    timespan = _TIMESPAN.fullmatch(text)
    if timespan:
        days, hours, minutes, seconds = (int(g or 0) for g in timespan.groups())
        interval = dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if interval <= dt.timedelta(0):
            raise ScheduleError(f"interval {expression!r} must be positive")
        return IntervalSchedule(expression, interval)
    fields = text.split()
    if len(fields) != 6:
        raise ScheduleError(
            f"{expression!r} has {len(fields)} fields; NCRONTAB needs 6 (second minute hour day month day-of-week)"
        )
    parsed = [_parse_field(f, *spec) for f, spec in zip(fields, _FIELDS, strict=True)]
    schedule = CronSchedule(expression, *parsed)
    schedule.next_after(dt.datetime.now(dt.timezone.utc))  # reject schedules that never fire
    return schedule
