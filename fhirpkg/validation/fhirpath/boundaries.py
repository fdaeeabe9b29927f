"""lowBoundary() and highBoundary() of decimals, dates, date-times and times (FHIRPath 5.7/5.8)."""
from __future__ import annotations

import re
from calendar import monthrange
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from fhirpathpy.engine.nodes import FP_DateTime, FP_Time, ResourceNode

from fhirpkg.validation.fhirpath.common import FhirPathError
from fhirpkg.validation.fhirpath.model import JsonNode, QUANTITY_TYPES

#: The fhirpathpy release whose internals this module was written against.

# --------------------------------------------------------------------------- boundaries


def boundary_of(ctx, focus, precision, *, high: bool):
    if not focus:
        return []
    if len(focus) > 1:
        raise FhirPathError(f"{'high' if high else 'low'}Boundary(): {len(focus)} items")
    item = focus[0]
    kind, text = _boundary_input(ctx, item)
    if kind is None or text is None:
        return []
    if isinstance(precision, list):
        precision = None
    if kind in ("decimal", "integer"):
        value = decimal_boundary(text, precision, high=high)
        return [] if value is None else value
    if kind == "Quantity":
        value = decimal_boundary(text, precision, high=high)
        if value is None:
            return []
        quantity = dict(item.data)
        quantity["value"] = value
        quantity.pop("_value", None)
        return JsonNode(quantity, "Quantity")
    if kind in ("date", "dateTime"):
        value = date_boundary(text, precision if precision is not None else (10 if kind == "date" else 17), high=high)
        return [] if value is None else FP_DateTime(value)
    if kind == "time":
        value = time_boundary(text, precision if precision is not None else 9, high=high)
        return [] if value is None else FP_Time(value)
    return []


def _boundary_input(ctx, item) -> tuple[str | None, str | None]:
    if isinstance(item, FP_DateTime):
        return ("dateTime" if "T" in item.asStr else "date"), item.asStr
    if isinstance(item, FP_Time):
        return "time", item.asStr
    if isinstance(item, ResourceNode):
        data, path = item.data, item.path
        model = ctx["types"]
        if isinstance(data, dict):
            if path in QUANTITY_TYPES or model.is_type(path, "Quantity"):
                value = data.get("value")
                return ("Quantity", decimal_text(value)) if value is not None else (None, None)
            return None, None
        if path in ("date", "dateTime", "instant", "time") and isinstance(data, str):
            return ("dateTime" if path == "instant" else path), data
        if path in ("decimal",) or isinstance(data, (float, Decimal)):
            return "decimal", decimal_text(data)
        if isinstance(data, int) and not isinstance(data, bool):
            return "integer", str(data)
        return None, None
    if isinstance(item, bool):
        return None, None
    if isinstance(item, (int, Decimal, float)):
        return ("integer" if isinstance(item, int) else "decimal"), decimal_text(item)
    return None, None


def decimal_text(value) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def decimal_boundary(text: str, precision: int | None, *, high: bool) -> Decimal | None:
    """FHIRPath lowBoundary/highBoundary of a decimal: ±half a unit of its last digit.

    ``1.587`` → ``1.58650000`` / ``1.58750000``; a precision outside 0..16 gives
    nothing (as the HL7 validator does).  Zero gives ±0.5 whatever its digits.
    """
    p = 8 if precision is None else int(precision)
    if p < 0 or p > 16:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    if d.is_zero():
        half = Decimal("0.5")
    else:
        places = max(-d.as_tuple().exponent, 0)
        half = Decimal(5).scaleb(-(places + 1))
    bound = d + half if high else d - half
    return bound.quantize(Decimal(1).scaleb(-p), rounding=ROUND_CEILING if high else ROUND_FLOOR)


_TZ = re.compile(r"(Z|[+-]\d{2}:\d{2})$")


def _split_tz(text: str) -> tuple[str, str]:
    if "T" in text:
        match = _TZ.search(text)
        if match:
            return text[: match.start()], match.group(1)
    return text, ""


def date_boundary(text: str, precision: int, *, high: bool) -> str | None:
    """Earliest/latest instant a date(Time) could mean, as the HL7 validator computes it.

    A missing timezone becomes +14:00 (low) or -12:00 (high), so comparisons of
    values without timezones never claim more than is known.
    """
    body, tz = _split_tz(text)
    if not re.fullmatch(r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?)?)?", body):
        return None
    if len(body) == 4:
        body += "-12" if high else "-01"
    if len(body) == 7:
        year, month = int(body[:4]), int(body[5:7])
        if not 1 <= month <= 12:
            return None
        body += f"-{monthrange(year, month)[1]:02d}" if high else "-01"
    if len(body) == 10:
        body += "T23:59" if high else "T00:00"
    if len(body) == 16:
        body += ":59" if high else ":00"
    if len(body) == 19:
        body += ".999" if high else ".000"
    cut = {4: 4, 6: 7, 7: 7, 8: 10, 10: 10, 14: 17, 17: None}
    if precision not in cut:
        return None
    end = cut[precision]
    if precision <= 10:
        return body[:end]
    zone = tz or ("-12:00" if high else "+14:00")
    return (body if end is None else body[:end]) + zone


def time_boundary(text: str, precision: int, *, high: bool) -> str | None:
    body, tz = _split_tz("T" + text.lstrip("T"))
    body = body[1:]
    if not re.fullmatch(r"\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?", body):
        return None
    if len(body) == 2:
        body += ":59" if high else ":00"
    if len(body) == 5:
        body += ":59" if high else ":00"
    if len(body) == 8:
        body += ".999" if high else ".000"
    cut = {2: 2, 4: 5, 6: 8, 9: None}
    if precision not in cut:
        return None
    end = cut[precision]
    return (body if end is None else body[:end]) + tz
