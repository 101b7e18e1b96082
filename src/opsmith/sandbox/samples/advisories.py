"""A small bundled advisory table: which dependency versions carry which published CVEs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]


@dataclass(frozen=True)
class Advisory:
    package: str
    # Space-separated comparators that must all hold, e.g. ">=0.8.1 <0.28.0".
    vulnerable: str
    cve: str
    severity: Severity
    title: str
    fixed_in: str


ADVISORIES: tuple[Advisory, ...] = (
    Advisory(
        "lodash", "<4.17.19", "CVE-2020-8203", "HIGH", "Prototype pollution in zipObjectDeep", "4.17.19"
    ),
    Advisory("lodash", "<4.17.21", "CVE-2021-23337", "HIGH", "Command injection via template", "4.17.21"),
    Advisory("minimist", "<1.2.6", "CVE-2021-44906", "CRITICAL", "Prototype pollution in setKey", "1.2.6"),
    Advisory(
        "axios", "<0.21.1", "CVE-2020-28168", "MEDIUM", "Server-side request forgery on redirect", "0.21.1"
    ),
    Advisory(
        "axios", ">=0.8.1 <0.28.0", "CVE-2023-45857", "MEDIUM", "XSRF-TOKEN leaked to third parties", "0.28.0"
    ),
    Advisory("express", "<4.19.2", "CVE-2024-29041", "MEDIUM", "Open redirect in malformed URLs", "4.19.2"),
    Advisory(
        "node-fetch", "<2.6.7", "CVE-2022-0235", "HIGH", "Exposure of sensitive headers on redirect", "2.6.7"
    ),
    Advisory("moment", "<2.29.2", "CVE-2022-24785", "HIGH", "Path traversal in locale loading", "2.29.2"),
)
