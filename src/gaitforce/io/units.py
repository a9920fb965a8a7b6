"""Unit spellings found in lab files, as factors to SI (shared by the readers).

Lab files spell units many ways: C3D parameters hold at most a few characters in old files (``mete`` for metres,
``nt``/``ntmm`` for newtons / newton millimetres), others write them out (``Newtons``, ``N.mm``, ``N-m``). The
``*_factor`` functions below accept all of them and return None for a spelling they cannot place, so each reader
decides what an unknown unit means for it.
"""

from __future__ import annotations

import re

#: length unit (lower case) -> metres
LENGTH_UNITS = {"mm": 1e-3, "millimeters": 1e-3, "millimetres": 1e-3, "cm": 1e-2, "centimeters": 1e-2,
                "centimetres": 1e-2, "m": 1.0, "meters": 1.0, "metres": 1.0}

#: force unit (lower case, no dots or spaces) -> newtons
FORCE_UNITS = {"n": 1.0, "nt": 1.0, "newton": 1.0, "newtons": 1.0, "kn": 1e3, "kilonewton": 1e3,
               "kilonewtons": 1e3, "lbf": 4.4482216152605, "lb": 4.4482216152605, "lbs": 4.4482216152605}

#: voltage unit (lower case) -> volts
VOLT_UNITS = {"v": 1.0, "volt": 1.0, "volts": 1.0, "mv": 1e-3, "millivolt": 1e-3, "millivolts": 1e-3,
              "uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "microv": 1e-6, "microvolt": 1e-6, "microvolts": 1e-6}

# full spellings whose leading part (at least 4 letters) old files keep: 'mete', 'millim', 'centi'
_LENGTH_WORDS = (("millimeters", 1e-3), ("millimetres", 1e-3), ("centimeters", 1e-2), ("centimetres", 1e-2),
                 ("meters", 1.0), ("metres", 1.0))


def _key(unit) -> str:
    return re.sub(r"[\s.]+", "", str(unit)).lower()


def length_factor(unit) -> float | None:
    """Metres per ``unit`` ('mm', 'Millimeters', 'mete', 'm.'...), or None if it is not a length unit."""
    key = _key(unit)
    if key in LENGTH_UNITS:
        return LENGTH_UNITS[key]
    if len(key) >= 4:
        for word, factor in _LENGTH_WORDS:
            if word.startswith(key):
                return factor
    return None


def force_factor(unit) -> float | None:
    """Newtons per ``unit`` ('N', 'nt', 'Newtons', 'kN', 'lbf'), or None if it is not a force unit."""
    return FORCE_UNITS.get(_key(unit))


def moment_factor(unit) -> tuple[float, float] | None:
    """(N m per ``unit``, metres per its length part) of a moment unit ('Nmm', 'N.mm', 'N-m', 'ntmm', 'N*m',
    'Newton meters'), or None if it is not a force times a length."""
    key = re.sub(r"[\s.*·\-_/]+", "", str(unit)).lower()
    for i in range(1, len(key)):
        force, length = force_factor(key[:i]), length_factor(key[i:])
        if force is not None and length is not None:
            return force * length, length
    return None


def volt_factor(unit) -> float | None:
    """Volts per ``unit`` ('V', 'Volts', 'mV', 'uV'), or None if it is not a voltage unit."""
    return VOLT_UNITS.get(_key(unit))
