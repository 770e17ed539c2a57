"""Just enough PromQL reading for the deploy tests: the series an expression selects.

The expressions are the project's own (rules and dashboard), so a lexer suffices: drop
strings, label matchers, grouping clauses, ranges and offsets; what is left that is
neither a function, a keyword nor a number names a metric or a recorded series.
"""

from __future__ import annotations

import re

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
GRAFANA_VARIABLES = {
    # What Grafana substitutes before sending a query, as a test stands them in.
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_OFFSET = re.compile(r"\boffset\s+\d+[smhdwy]")
_NAME = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_SELECTOR = re.compile(r'(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\})?(?!\s*\()')


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Stand in for Grafana's template variables ($name, ${name}) and its built-ins."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    for name, value in variables.items():
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    if "$" in expr.replace("$1", ""):
        raise ValueError(f"a variable is left unsubstituted in {expr!r}")
    return expr


def metric_names(expr: str) -> set[str]:
    """Names of the metrics and recorded series an expression reads."""
    text = _OFFSET.sub(" ", _RANGE.sub(" ", _GROUPING.sub(" ", _MATCHERS.sub(" ", _STRING.sub('""', expr)))))
    names = set()
    for match in _NAME.finditer(text):
        name, call = match.groups()
        if call is None and name not in KEYWORDS and not re.fullmatch(r"(?:Inf|NaN|e\d*)", name):
            names.add(name)
    return names


def selectors(expr: str) -> set[str]:
    """Each series selector of an expression (name and label matchers), as written."""
    found = set()
    for match in _SELECTOR.finditer(_GROUPING.sub(" ", _blank_strings_outside_matchers(expr))):
        name, matchers = match.groups()
        if name not in KEYWORDS and name in metric_names(expr):
            found.add(name + (matchers or ""))
    return found


def _blank_strings_outside_matchers(expr: str) -> str:
    """Blank out string literals that are function arguments, keeping those in matchers."""
    out, depth, i = [], 0, 0
    while i < len(expr):
        char = expr[i]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == '"' and depth == 0:
            end = _STRING.match(expr, i)
            if end:
                out.append('""')
                i = end.end()
                continue
        out.append(char)
        i += 1
    return "".join(out)
