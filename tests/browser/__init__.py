"""The web console in a real browser (Debian's Chromium, driven by Playwright) against `opsmith serve`."""
