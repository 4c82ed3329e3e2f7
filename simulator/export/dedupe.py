"""``--dedupe``: drop sessions that nearly duplicate one already kept, across the whole export.

Near means a Jaccard similarity of word 5-gram shingles (lowercased, split on whitespace) at or above the threshold, estimated
with MinHash (datasketch) and found through its LSH index; a candidate the index returns is
confirmed against the threshold before the session is dropped, and the first session (in
export order) is the one kept, so the result is deterministic.
"""

from __future__ import annotations

import zlib
from typing import Any

from simulator.errors import InputError

SHINGLE_WORDS = 5
NUM_PERM = 128
INSTALL_HINT = "pip install 'simulator[export]'"
MASK32 = 0xFFFFFFFF


def method(threshold: float) -> str:
    """The method and threshold, as the summary and the card print them."""
    return f"MinHash ({NUM_PERM} permutations) over word {SHINGLE_WORDS}-gram shingles, Jaccard >= {threshold:.2f}"


class NearDuplicates:
    """Keeps the MinHash signature of each kept session; ``check`` answers which kept session a
    text repeats. One MinHash is reused (cleared) for every text: the LSH index keeps only
    band hashes, and the signatures are kept as copies."""

    def __init__(self, threshold: float) -> None:
        try:
            import numpy
            from datasketch import MinHash, MinHashLSH
        except ImportError:
            raise InputError("--dedupe", f"needs the datasketch package: {INSTALL_HINT}") from None
        self.threshold = threshold
        self._numpy = numpy
        self._minhash = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=MASK32.__and__)
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self._kept: dict[str, Any] = {}
        self._word_ids = _WordIds()

    def check(self, key: str, text: str) -> str | None:
        """The key of a kept session ``text`` nearly duplicates, or None (and it is kept)."""
        signature = self._minhash
        signature.clear()
        signature.update_batch(self._shingles(text))
        digest = signature.digest()
        for other in sorted(self._lsh.query(signature)):
            if self._jaccard(digest, self._kept[other]) >= self.threshold:
                return str(other)
        self._lsh.insert(key, signature)
        self._kept[key] = digest
        return None

    def _jaccard(self, one: Any, other: Any) -> float:
        """The MinHash estimate: the share of permutations whose minimum agrees."""
        return float(self._numpy.count_nonzero(one == other)) / NUM_PERM

    def _shingles(self, text: str) -> set[int]:
        """Word n-gram shingles as ints: CRC32 per word, then the (unsalted) hash of each
        tuple of word ids, so the same text always gives the same shingles."""
        words = list(map(self._word_ids.__getitem__, text.lower().split()))
        size = min(SHINGLE_WORDS, len(words)) or 1
        return set(map(hash, zip(*(words[i:] for i in range(size)), strict=False)))


class _WordIds(dict[str, int]):
    def __missing__(self, word: str) -> int:
        self[word] = value = zlib.crc32(word.encode())
        return value
