"""What the shop sells: a fixed catalogue of products, priced in euro cents."""

from __future__ import annotations

from typing import NamedTuple


class Product(NamedTuple):
    id: str
    name: str
    price_cents: int
    description: str


PRODUCTS: tuple[Product, ...] = (
    Product("wool-coat", "Wool coat", 18900, "Charcoal, knee length, two deep pockets."),
    Product("rain-jacket", "Rain jacket", 9900, "Packs into its own pocket."),
    Product("scarf", "Striped scarf", 2900, "Lambswool, long enough to wrap twice."),
    Product("gloves", "Leather gloves", 4500, "Lined, with a touch-screen fingertip."),
    Product("umbrella", "Umbrella", 3500, "Folds to 25 cm; survives a gust."),
    Product("hat", "Felt hat", 5900, "Wide brim, grosgrain band."),
)

_BY_ID = {product.id: product for product in PRODUCTS}


def find(product_id: str) -> Product | None:
    """The product with this ID, or None.

    >>> find("scarf").name
    'Striped scarf'
    """
    return _BY_ID.get(product_id)


def euros(cents: int) -> str:
    """A price as shown: ``euros(2900) == '€29.00'``."""
    return f"€{cents // 100}.{cents % 100:02d}"
