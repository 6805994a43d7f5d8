"""The cart, kept in the session as ``{"cart": {product_id: quantity}}``.

Every change goes through these functions, which write the session only when the cart changes.

>>> from coatcheck.session import Session
>>> session = Session.fresh(now=0.0, max_size=4096)
>>> add(session, "scarf", 2)
>>> [(line.product.id, line.quantity) for line in lines(session)]
[('scarf', 2)]
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, NamedTuple

from .catalog import Product, find

MAX_QUANTITY = 99
"""The most of one product a cart holds; adding beyond it stops there."""


class Line(NamedTuple):
    product: Product
    quantity: int

    @property
    def total_cents(self) -> int:
        return self.product.price_cents * self.quantity


class UnknownProduct(LookupError):
    """No product has this ID."""


def _cart(session: MutableMapping[str, Any]) -> dict[str, int]:
    cart = session.get("cart")
    return dict(cart) if isinstance(cart, dict) else {}


def _product(product_id: str) -> Product:
    product = find(product_id)
    if product is None:
        raise UnknownProduct(product_id)
    return product


def lines(session: MutableMapping[str, Any]) -> list[Line]:
    """The cart's lines in catalogue order (entries for withdrawn products are left out)."""
    cart = _cart(session)
    found = [(find(product_id), quantity) for product_id, quantity in cart.items()]
    return [Line(product, quantity) for product, quantity in found if product is not None]


def total_cents(session: MutableMapping[str, Any]) -> int:
    return sum(line.total_cents for line in lines(session))


def count(session: MutableMapping[str, Any]) -> int:
    """How many items the cart holds in all."""
    return sum(line.quantity for line in lines(session))


def add(session: MutableMapping[str, Any], product_id: str, quantity: int = 1) -> None:
    """Add ``quantity`` of a product (at most :data:`MAX_QUANTITY` in all)."""
    product = _product(product_id)
    cart = _cart(session)
    cart[product.id] = min(cart.get(product.id, 0) + max(quantity, 1), MAX_QUANTITY)
    session["cart"] = cart


def set_quantity(session: MutableMapping[str, Any], product_id: str, quantity: int) -> None:
    """Set a line's quantity; 0 removes it."""
    product = _product(product_id)
    if quantity <= 0:
        remove(session, product.id)
        return
    cart = _cart(session)
    cart[product.id] = min(quantity, MAX_QUANTITY)
    session["cart"] = cart


def remove(session: MutableMapping[str, Any], product_id: str) -> None:
    """Take a product out of the cart (nothing happens if it is not in it)."""
    product = _product(product_id)
    cart = _cart(session)
    if cart.pop(product.id, None) is not None:
        session["cart"] = cart
