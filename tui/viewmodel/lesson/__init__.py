"""The Lesson screen's pages, in the lesson's order: each a plain-Python page (page.py) in its own module.

`make_pages()` builds the pages whose modules are present; a module (named as the page, or with "_page" after
it where the page's name is taken, as sampling_page) defines one page class, found by its `name` attribute.
"""

from __future__ import annotations

import importlib
import inspect

PAGE_NAMES = ("encoding", "batching", "shapes", "train_eval", "sampling", "memory", "gates_map", "complete")


def page_class(name: str):
    """The class of page `name`, or None when its module is not there."""
    for module_name in (f"{__name__}.{name}", f"{__name__}.{name}_page"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # the module is there but needs something missing: a real error
                raise
            continue
        for _, value in inspect.getmembers(module, inspect.isclass):
            if value.__module__ == module.__name__ and getattr(value, "name", None) == name and hasattr(value, "view"):
                return value
    return None


def make_pages(background: bool = False) -> list:
    """A fresh page for every page module present, in PAGE_NAMES' order. `background` (the app) goes to the
    pages that take it: they then do slow work off the caller's thread."""
    pages = []
    for cls in filter(None, map(page_class, PAGE_NAMES)):
        takes = "background" in inspect.signature(cls).parameters
        pages.append(cls(background=background) if takes else cls())
    return pages
