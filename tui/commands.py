"""Command palette: every key of the screen by name, from the screen's own list so the two never drift."""

from __future__ import annotations

from textual.command import DiscoveryHit, Hit, Hits, Provider


class ScreenCommands(Provider):
    """Lists `screen.commands()` (place, binding, callable) when the screen has one. A command runs even where
    its key is hidden from the footer; each action refuses with a notification when it cannot run."""

    def commands(self) -> list[tuple[str, str, object]]:
        listed = getattr(self.screen, "commands", None)
        if listed is None:
            return []
        return [(binding.description,
                 f"{place} · key {self.app.get_key_display(binding)}" + (f" · {binding.tooltip}" if binding.tooltip else ""),
                 run)
                for place, binding, run in listed()]

    async def discover(self) -> Hits:
        for title, help_text, run in self.commands():
            yield DiscoveryHit(title, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, run in self.commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), run, help=help_text)
