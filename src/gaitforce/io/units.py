"""Unit spellings found in lab files, as factors to SI (shared by the readers)."""

#: length unit (lower case) -> metres
LENGTH_UNITS = {"mm": 1e-3, "millimeters": 1e-3, "millimetres": 1e-3, "cm": 1e-2, "centimeters": 1e-2,
                "centimetres": 1e-2, "m": 1.0, "meters": 1.0, "metres": 1.0}
