"""inventory: a toy shop inventory / cart library."""

from .utils import calc_tax, calc_total, format_money
from .cart import Cart
from .report import build_report

__all__ = ["Cart", "build_report", "calc_tax", "calc_total", "format_money"]
