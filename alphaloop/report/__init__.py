"""The run report: summary.json + metrics.jsonl -> report.html with plots, and the terminal report card."""

from alphaloop.report.html import build_report, format_report_card

__all__ = ["build_report", "format_report_card"]
