"""Routing on the simulated broker: topic exchanges, as RabbitMQ routes.

A binding key is a dot-separated pattern: ``*`` stands for exactly one word,
``#`` for zero or more. ``Exchange`` indexes its bindings for speed (exact
keys, ``service.*`` keys by their prefix, other patterns in order) and caches
the queues a routing key reaches until the bindings change.
"""

from __future__ import annotations

__all__ = ["Exchange", "match_words", "topic_matches"]


def match_words(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(match_words(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and match_words(rest, words[1:])


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more."""
    return match_words(pattern.split("."), routing_key.split("."))


class Exchange:
    __slots__ = ("cache", "exact", "name", "one_word", "patterns")

    def __init__(self, name: str) -> None:
        self.name = name
        # routing key -> queues; bindings change rarely, keys repeat constantly
        self.cache: dict[str, tuple[str, ...]] = {}
        # Bindings indexed for speed; routing order is exact, one-word, patterns.
        self.exact: dict[str, list[str]] = {}
        self.one_word: dict[str, list[str]] = {}  # "svc.*" indexed by "svc"
        self.patterns: list[tuple[str, str]] = []

    def bind(self, pattern: str, queue: str) -> None:
        self.cache.clear()
        words = pattern.split(".")
        if "*" not in words and "#" not in words:
            targets = self.exact.setdefault(pattern, [])
        elif words[-1] == "*" and "*" not in words[:-1] and "#" not in words:
            targets = self.one_word.setdefault(pattern[:-2], [])
        else:
            if (pattern, queue) not in self.patterns:
                self.patterns.append((pattern, queue))
            return
        if queue not in targets:
            targets.append(queue)

    def bindings_of(self, queue: str) -> list[str]:
        found = [key for key, targets in self.exact.items() if queue in targets]
        found += [f"{prefix}.*" for prefix, targets in self.one_word.items() if queue in targets]
        found += [pattern for pattern, target in self.patterns if target == queue]
        return found

    @property
    def in_use(self) -> bool:
        """Whether any queue is bound to it."""
        return bool(self.patterns) or any(self.exact.values()) or any(self.one_word.values())

    def unbind_queue(self, queue: str) -> None:
        self.cache.clear()
        for table in (self.exact, self.one_word):
            for targets in table.values():
                if queue in targets:
                    targets.remove(queue)
        self.patterns = [entry for entry in self.patterns if entry[1] != queue]

    def route(self, routing_key: str) -> tuple[str, ...]:
        found = self.cache.get(routing_key)
        if found is None:
            if len(self.cache) > 10_000:  # many one-off reply ids: start afresh
                self.cache.clear()
            found = self.cache[routing_key] = tuple(self._route(routing_key))
        return found

    def _route(self, routing_key: str) -> list[str]:
        found = list(self.exact.get(routing_key, ()))
        prefix, dot, _ = routing_key.rpartition(".")
        if dot:
            for queue in self.one_word.get(prefix, ()):
                if queue not in found:
                    found.append(queue)
        for pattern, queue in self.patterns:
            if queue not in found and topic_matches(pattern, routing_key):
                found.append(queue)
        return found
