"""The project's own invoice PDF (reportlab) and QR code (segno).

- :func:`render_invoice_pdf` — ``InvoiceDocument`` → PDF bytes (``chalicelib.pdf.render``);
- :func:`qr_svg` — the QR code as inline SVG for the customer's page (``chalicelib.pdf.qr``).
"""

from chalicelib.pdf.qr import qr_svg
from chalicelib.pdf.render import missing_characters, render_invoice_pdf

__all__ = ["missing_characters", "qr_svg", "render_invoice_pdf"]
