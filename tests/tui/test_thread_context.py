"""`p` shows the thread above an item: its parent, and that one's parent, nearest first."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hnbooks.importing import import_file
from hnbooks.store.db import Store
from tests.tui.conftest import make_app, publish, screen_text, settle

ALGOLIA_TREE = Path(__file__).parents[1] / "store" / "data" / "hn_shapes" / "algolia_item_tree.json"


def test_p_shows_the_parent_chain_of_an_imported_thread(db_path: Path, store: Store) -> None:
    import_file(store, ALGOLIA_TREE)
    deepest = next(
        item.id
        for item in store.items_by_ids(list(range(1, 10)))
        if item.external_id == "hn:27501450"
    )
    publish(store, [deepest])

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await pilot.press("p")
            lines = screen_text(app).splitlines()
            parent = next(n for n, line in enumerate(lines) if "parent / story:" in line)
            assert "Thanks! It's in the collection *Wireless*." in lines[parent]
            assert "↑ Charles Stross has a short story" in lines[parent + 1]
            assert "↑ Ask HN: What are you reading this summer?" in lines[parent + 2]

    asyncio.run(scenario())
