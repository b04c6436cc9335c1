"""RFC 6962 / RFC 9162 Merkle tree hashing: leaf and node hashes, roots, inclusion and
consistency proofs, and their verification."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A Merkle proof does not verify, or its arguments are out of range."""


def leaf_hash(data: bytes) -> bytes:
    """MTH of a single leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only tree that keeps every perfect subtree hash, level by level.

    Level k holds the hashes of the aligned perfect subtrees of 2**k leaves, concatenated in
    one bytearray. A root, inclusion or consistency proof at any size therefore costs
    O(log n) hashes, never a rehash of the leaves.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MerkleTree:
        tree = cls()
        for data in leaves:
            tree.append_leaf_hash(leaf_hash(data))
        return tree

    @property
    def size(self) -> int:
        return self._size

    def append_leaf_hash(self, hash_: bytes) -> None:
        levels = self._levels
        levels[0] += hash_
        self._size += 1
        index, level = self._size - 1, 0
        while index & 1:
            below = levels[level]
            parent = node_hash(below[-64:-32], below[-32:])
            level += 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += parent
            index >>= 1

    def extend_leaf_hashes(self, hashes: bytes) -> None:
        """Append many leaf hashes at once (concatenated), level by level."""
        if len(hashes) % HASH_SIZE:
            raise ProofError(f"{len(hashes)} bytes are not a whole number of leaf hashes")
        self._size += len(hashes) // HASH_SIZE
        new, level = hashes, 0
        while new:
            below = self._levels[level]
            first_pair = len(below) // (2 * HASH_SIZE) * 2 * HASH_SIZE
            below += new
            new = b"".join(
                hashlib.sha256(b"\x01" + below[i : i + 2 * HASH_SIZE]).digest()
                for i in range(first_pair, len(below) - 2 * HASH_SIZE + 1, 2 * HASH_SIZE)
            )
            level += 1
            if new and level == len(self._levels):
                self._levels.append(bytearray())

    def leaf_hash_at(self, index: int) -> bytes:
        self._check_size(index + 1)
        return bytes(self._levels[0][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first `size` leaves (default: all)."""
        size = self._size if size is None else size
        self._check_size(size)
        return self._subtree_hash(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 PATH(index, D[0:size])."""
        size = self._size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ProofError(f"leaf index {index} is outside a tree of size {size}")
        proof: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = split_point(end - start)
            if index < start + k:
                proof.append(self._subtree_hash(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree_hash(start, start + k))
                start += k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 PROOF(old_size, D[0:new_size])."""
        new_size = self._size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise ProofError(f"cannot prove size {old_size} consistent with size {new_size}")
        if old_size in (0, new_size):
            return []
        proof: list[bytes] = []
        start, end, m, whole_old_tree = 0, new_size, old_size, True
        while m != end - start:
            k = split_point(end - start)
            if m <= k:
                proof.append(self._subtree_hash(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree_hash(start, start + k))
                start += k
                m -= k
                whole_old_tree = False
        if not whole_old_tree:
            proof.append(self._subtree_hash(start, end))
        proof.reverse()
        return proof

    def frontier(self, size: int | None = None) -> Frontier:
        """The compact range of the first `size` leaves: enough to extend them and get roots."""
        size = self._size if size is None else size
        self._check_size(size)
        hashes, start = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                hashes.append(self._subtree_hash(start, start + (1 << level)))
                start += 1 << level
        return Frontier(size, hashes)

    def _subtree_hash(self, start: int, end: int) -> bytes:
        width = end - start
        if width & (width - 1) == 0 and start % width == 0:
            level = width.bit_length() - 1
            offset = (start >> level) * HASH_SIZE
            return bytes(self._levels[level][offset : offset + HASH_SIZE])
        k = split_point(width)
        return node_hash(self._subtree_hash(start, start + k), self._subtree_hash(start + k, end))

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise ProofError(f"tree size {size} is outside the tree (it has {self._size} leaves)")


class Frontier:
    """The roots of the perfect subtrees a tree of `size` leaves decomposes into, largest
    first: O(log n) hashes that extend the tree and give its root without its leaves."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count() or any(len(h) != HASH_SIZE for h in hashes):
            raise ProofError(f"a frontier of {size} leaves has {size.bit_count()} 32-byte hashes")
        self.size = size
        self.hashes = list(hashes)

    def append_leaf_hash(self, hash_: bytes) -> None:
        hashes, index = self.hashes, self.size
        hashes.append(hash_)
        while index & 1:
            right = hashes.pop()
            hashes[-1] = node_hash(hashes[-1], right)
            index >>= 1
        self.size += 1

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """Root hash of a list of leaf data (convenience for small trees)."""
    return MerkleTree.from_leaves(leaves).root()


def _check_hashes(hashes: Iterable[bytes], what: str) -> None:
    for position, value in enumerate(hashes):
        if len(value) != HASH_SIZE:
            raise ProofError(f"{what}[{position}] is {len(value)} bytes, expected {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2: the root implied by an inclusion proof."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hashes([leaf], "leaf hash")
    _check_hashes(proof, "proof")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless `leaf` (a leaf hash) is at `index` in the tree with `root`."""
    got = root_from_inclusion_proof(index, size, leaf, proof)
    if got != root:
        raise ProofError(f"inclusion proof leads to root {got.hex()}, expected {root.hex()}")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2: raise ProofError unless the old tree is a prefix of the new."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old size {old_size} is not between 0 and new size {new_size}")
    if old_size == new_size or old_size == 0:
        if proof:
            raise ProofError(f"consistency proof from {old_size} to {new_size} must be empty")
        if old_size == new_size and old_root != new_root:
            raise ProofError(f"different roots for the same tree size {old_size}")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    _check_hashes(proof, "proof")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise ProofError(
            f"consistency proof leads to old root {fr.hex()}, expected {old_root.hex()}"
        )
    if sr != new_root:
        raise ProofError(
            f"consistency proof leads to new root {sr.hex()}, expected {new_root.hex()}"
        )
