//! The Merkle tree over the log (spec §13): RFC 9162 §2.1, the leaf of
//! record `seq` being its 32-byte chain hash, at leaf index `seq - 1`.
//!
//! - leaf hash `SHA-256(0x00 ‖ chain_hash)`, interior node
//!   `SHA-256(0x01 ‖ left ‖ right)`, empty root `SHA-256("")`;
//! - [`MerkleTree`] keeps every complete subtree's hash (level `j ≥ 1` holds
//!   the roots of the aligned subtrees of `2^j` leaves, level 0 the chain
//!   hashes the leaves are hashed from), so a push is amortised
//!   O(1) (at most log n node hashes), `root_at(size)` is O(log n) for any
//!   past size, and an inclusion or consistency proof is a walk of the RFC's
//!   recursion that reads stored nodes and hashes at most one incomplete
//!   (right-border) subtree per level;
//! - [`Frontier`] is the compact form an auditor keeps between runs: the
//!   roots of the maximal complete subtrees of a tree of `size` leaves (at
//!   most 64 hashes), enough to push more leaves and compute the new root;
//! - [`verify_inclusion`] / [`verify_consistency`] are RFC 9162 §2.1.3.2 and
//!   §2.1.4.2 verbatim (bit arithmetic, no recursion).
//!
//! Pure: no I/O, no clock. The tree is derived from the log, never a second
//! truth: whoever holds the chain hashes can rebuild it.

use super::codec::Hash;

/// Root of the empty tree: `SHA-256("")`.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Leaf hash of a record: `SHA-256(0x00 ‖ chain_hash)`.
pub fn leaf_hash(chain_hash: &Hash) -> Hash {
    let mut m = [0u8; 64];
    m[1..33].copy_from_slice(chain_hash);
    sha256_short(&mut m, 33)
}

/// Interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut m = [0u8; 128];
    m[0] = 1;
    m[1..33].copy_from_slice(left);
    m[33..65].copy_from_slice(right);
    sha256_short(&mut m, 65)
}

/// SHA-256 of the first `len` bytes of `m` (the rest zero, room for the
/// padding: one block up to 55 bytes, two up to 119), padded here and
/// compressed block by block: for messages this short the `Digest` API's
/// buffering cost about as much as the compression (an audit hashes three
/// of these per record). `tests::short_hashes_are_sha256` checks it against
/// the `Digest` API.
#[inline]
fn sha256_short<const N: usize>(m: &mut [u8; N], len: usize) -> Hash {
    use sha2::digest::generic_array::GenericArray;
    const IV: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    let end = (len + 9).div_ceil(64) * 64;
    debug_assert!(end <= N);
    m[len] = 0x80;
    m[end - 8..end].copy_from_slice(&(len as u64 * 8).to_be_bytes());
    let mut state = IV;
    for block in m[..end].chunks_exact(64) {
        sha2::compress256(&mut state, &[*GenericArray::from_slice(block)]);
    }
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// Why a proof does not check (or cannot be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// Leaf index (seq - 1).
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// The sizes are not `0 < first ≤ second`.
    #[error("no consistency proof from size {first} to size {second}")]
    BadSizes {
        /// Older size.
        first: u64,
        /// Newer size.
        second: u64,
    },
    /// The path has the wrong number of hashes for these sizes.
    #[error("proof has the wrong length")]
    WrongLength,
    /// The path does not lead to the expected root.
    #[error("proof does not lead to the signed root")]
    RootMismatch,
    /// The path does not lead to the older root (consistency).
    #[error("proof does not lead to the older root")]
    FirstRootMismatch,
}

/// Largest power of two strictly below `n` (`n ≥ 2`): RFC 9162's `k`.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// An append-only Merkle tree holding every complete subtree hash
/// (about 64 bytes per leaf).
#[derive(Debug, Clone, Default)]
pub struct MerkleTree {
    /// `levels[j][i]` = root of leaves `i·2^j .. (i+1)·2^j` for `j ≥ 1`;
    /// `levels[0]` holds the records' chain hashes themselves (a leaf's
    /// hash is computed when read: the log's readers get the chain hashes
    /// from here instead of re-hashing the stored records).
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// The empty tree.
    pub fn new() -> MerkleTree {
        MerkleTree { levels: vec![] }
    }

    /// Appends the leaf of the next record, given its chain hash.
    pub fn push(&mut self, chain_hash: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(chain_hash);
        let mut j = 0;
        // A level's new node is complete when it has an even count: pair it up.
        while self.levels[j].len().is_multiple_of(2) {
            let n = self.levels[j].len();
            let (l, r) = (&self.levels[j][n - 2], &self.levels[j][n - 1]);
            let parent = if j == 0 {
                node_hash(&leaf_hash(l), &leaf_hash(r))
            } else {
                node_hash(l, r)
            };
            if self.levels.len() == j + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[j + 1].push(parent);
            j += 1;
        }
    }

    /// Chain hashes of leaves `from..to` (record seqs `from + 1 ..= to`);
    /// `None` beyond the tree.
    pub fn chain_hashes(&self, from: u64, to: u64) -> Option<&[Hash]> {
        let (a, b) = (usize::try_from(from).ok()?, usize::try_from(to).ok()?);
        match self.levels.first() {
            Some(l) => l.get(a..b),
            None => (a == b).then_some(&[][..]),
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels
            .first()?
            .get(usize::try_from(index).ok()?)
            .map(leaf_hash)
    }

    /// Root of the whole tree.
    pub fn root(&self) -> Hash {
        self.range_hash(0, self.size())
    }

    /// Root of the tree of the first `size` leaves; `None` beyond the tree.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        (size <= self.size()).then(|| self.range_hash(0, size))
    }

    /// The maximal complete subtrees of the first `size` leaves.
    pub fn frontier_at(&self, size: u64) -> Option<Frontier> {
        if size > self.size() {
            return None;
        }
        let mut nodes = Vec::new();
        let mut lo = 0u64;
        for j in (0..64).rev() {
            if size & (1u64 << j) != 0 {
                nodes.push(self.complete(j, lo));
                lo += 1u64 << j;
            }
        }
        Some(Frontier { size, nodes })
    }

    /// Stored root of the complete subtree of `2^j` leaves starting at `lo`.
    fn complete(&self, j: u32, lo: u64) -> Hash {
        let h = &self.levels[j as usize][(lo >> j) as usize];
        if j == 0 {
            leaf_hash(h)
        } else {
            *h
        }
    }

    /// MTH of leaves `lo..hi`, where `lo` is a multiple of a power of two
    /// ≥ `hi - lo` (every range RFC 9162's recursion visits is): the binary
    /// decomposition of the length into stored complete subtrees, folded
    /// right to left.
    fn range_hash(&self, lo: u64, hi: u64) -> Hash {
        let len = hi - lo;
        if len == 0 {
            return EMPTY_ROOT;
        }
        let mut acc: Option<Hash> = None;
        // Lowest bit = rightmost subtree.
        let mut end = hi;
        for j in 0..64u32 {
            if len & (1u64 << j) != 0 {
                let start = end - (1u64 << j);
                let h = self.complete(j, start);
                acc = Some(match acc {
                    None => h,
                    Some(right) => node_hash(&h, &right),
                });
                end = start;
            }
        }
        acc.unwrap_or(EMPTY_ROOT)
    }

    /// RFC 9162 §2.1.3.1 audit path of leaf `index` in the tree of the first
    /// `size` leaves (leaf-to-root order); `None` when `index ≥ size` or
    /// `size` is beyond the tree.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if index >= size || size > self.size() {
            return None;
        }
        // Walk down PATH(m, D[lo:lo+n]), collecting siblings root-to-leaf.
        let mut path = Vec::with_capacity(64);
        let (mut lo, mut n, mut m) = (0u64, size, index);
        while n > 1 {
            let k = split(n);
            if m < k {
                path.push(self.range_hash(lo + k, lo + n));
                n = k;
            } else {
                path.push(self.range_hash(lo, lo + k));
                lo += k;
                n -= k;
                m -= k;
            }
        }
        path.reverse();
        Some(path)
    }

    /// RFC 9162 §2.1.4.1 consistency proof from the tree of `first` leaves
    /// to that of `second` leaves; empty when they are equal; `None` unless
    /// `0 < first ≤ second ≤ size()`.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Option<Vec<Hash>> {
        if first == 0 || first > second || second > self.size() {
            return None;
        }
        if first == second {
            return Some(vec![]);
        }
        // SUBPROOF(m, D[lo:lo+n], b), iteratively; nodes collected root-first.
        let mut path = Vec::with_capacity(64);
        let (mut lo, mut n, mut m, mut b) = (0u64, second, first, true);
        loop {
            if m == n {
                if !b {
                    path.push(self.range_hash(lo, lo + n));
                }
                break;
            }
            let k = split(n);
            if m <= k {
                path.push(self.range_hash(lo + k, lo + n));
                n = k;
            } else {
                path.push(self.range_hash(lo, lo + k));
                lo += k;
                n -= k;
                m -= k;
                b = false;
            }
        }
        path.reverse();
        Some(path)
    }
}

/// The compact state of a tree of `size` leaves: the roots of its maximal
/// complete subtrees, largest (leftmost) first. What an auditor stores to
/// continue computing roots without the whole tree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Rebuilds a frontier from its parts; `None` unless there is one node
    /// per set bit of `size`.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Option<Frontier> {
        (size.count_ones() as usize == nodes.len()).then_some(Frontier { size, nodes })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest first.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends the leaf of the next record, given its chain hash.
    pub fn push(&mut self, chain_hash: &Hash) {
        let mut h = leaf_hash(chain_hash);
        // Merge equal-sized subtrees: one merge per trailing one bit of size.
        let mut s = self.size;
        while s & 1 == 1 {
            // Invariant: one node per set bit, so a node is there to pop.
            let Some(left) = self.nodes.pop() else { break };
            h = node_hash(&left, &h);
            s >>= 1;
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// Root of the tree.
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(mut acc) = it.next().copied() else {
            return EMPTY_ROOT;
        };
        for left in it {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// RFC 9162 §2.1.3.2: checks that `leaf` (a leaf hash) is at `index` in the
/// tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    path: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: checks that the tree of `second` leaves with root
/// `second_root` extends the tree of `first` leaves with root `first_root`.
/// Equal sizes need an empty path and equal roots.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    path: &[Hash],
) -> Result<(), ProofError> {
    if first == 0 || first > second {
        return Err(ProofError::BadSizes { first, second });
    }
    if first == second {
        if !path.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if first_root == second_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let mut nodes: Vec<Hash> = Vec::with_capacity(path.len() + 1);
    if first.is_power_of_two() {
        nodes.push(*first_root);
    }
    nodes.extend_from_slice(path);
    let Some((&start, rest)) = nodes.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (start, start);
    for c in rest {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *first_root {
        return Err(ProofError::FirstRootMismatch);
    }
    if sr != *second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn short_hashes_are_sha256() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            let mut h = [[0u8; 32]; 2];
            for b in h.iter_mut().flatten() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let want_leaf: Hash = Sha256::new()
                .chain_update([0u8])
                .chain_update(h[0])
                .finalize()
                .into();
            let want_node: Hash = Sha256::new()
                .chain_update([1u8])
                .chain_update(h[0])
                .chain_update(h[1])
                .finalize()
                .into();
            assert_eq!(leaf_hash(&h[0]), want_leaf);
            assert_eq!(node_hash(&h[0], &h[1]), want_node);
        }
        // Every length the padding handles, one and two blocks.
        for len in 0..=119 {
            let mut m = [0u8; 128];
            for (i, b) in m[..len].iter_mut().enumerate() {
                *b = i as u8 ^ 0x5a;
            }
            let want: Hash = Sha256::digest(&m[..len]).into();
            assert_eq!(sha256_short(&mut m, len), want, "{len} bytes");
        }
    }

    /// RFC 9162 §2.1.1's MTH, recursively from the definition: the
    /// reference the stored-node tree is checked against.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_ROOT,
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// RFC 9162 §2.1.3.1 PATH, recursively (leaf-to-root order).
    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = split(n as u64) as usize;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    /// RFC 9162 §2.1.4.1 SUBPROOF, recursively.
    fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { vec![] } else { vec![mth(leaves)] };
        }
        let k = split(n as u64) as usize;
        if m <= k {
            let mut p = subproof(m, &leaves[..k], b);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = subproof(m - k, &leaves[k..], false);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    fn chain(n: usize, salt: u8) -> Vec<Hash> {
        (0..n)
            .map(|i| {
                let mut h = Sha256::new();
                h.update([salt]);
                h.update((i as u64).to_be_bytes());
                h.finalize().into()
            })
            .collect()
    }

    fn tree(leaves: &[Hash]) -> MerkleTree {
        let mut t = MerkleTree::new();
        for l in leaves {
            t.push(*l);
        }
        t
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let h: Hash = Sha256::digest(b"").into();
        assert_eq!(h, EMPTY_ROOT);
        assert_eq!(MerkleTree::new().root(), EMPTY_ROOT);
        assert_eq!(Frontier::new().root(), EMPTY_ROOT);
    }

    /// Every size 1..=64: roots, every inclusion proof and every
    /// consistency proof match the RFC's recursive definitions and verify;
    /// a changed leaf, a wrong index, a shrunk tree or a wrong root do not.
    #[test]
    fn small_trees_exhaustively() {
        let leaves = chain(64, 1);
        let t = tree(&leaves);
        let mut fr = Frontier::new();
        for n in 1..=64usize {
            fr.push(&leaves[n - 1]);
            let root = mth(&leaves[..n]);
            assert_eq!(t.root_at(n as u64), Some(root), "root n={n}");
            assert_eq!(fr.root(), root, "frontier root n={n}");
            assert_eq!(t.frontier_at(n as u64).as_ref(), Some(&fr));
            let shrunk_root = mth(&leaves[..n - 1]);
            for m in 0..n {
                let p = t.inclusion_proof(m as u64, n as u64).expect("in range");
                assert_eq!(p, path(m, &leaves[..n]), "path m={m} n={n}");
                let leaf = leaf_hash(&leaves[m]);
                verify_inclusion(m as u64, n as u64, &leaf, &p, &root).expect("verifies");
                // A changed leaf.
                let other = leaf_hash(&[0xAA; 32]);
                assert!(verify_inclusion(m as u64, n as u64, &other, &p, &root).is_err());
                // The chain hash itself instead of the leaf hash.
                assert!(verify_inclusion(m as u64, n as u64, &leaves[m], &p, &root).is_err());
                // Another index.
                if n > 1 {
                    let m2 = (m + 1) % n;
                    assert!(verify_inclusion(m2 as u64, n as u64, &leaf, &p, &root).is_err());
                }
                // A shrunk tree (same path, smaller size / its root).
                if m < n - 1 {
                    let r2 = shrunk_root;
                    assert!(verify_inclusion(m as u64, n as u64 - 1, &leaf, &p, &r2).is_err());
                }
                // A tampered path element.
                for i in 0..p.len() {
                    let mut bad = p.clone();
                    bad[i][0] ^= 1;
                    assert!(verify_inclusion(m as u64, n as u64, &leaf, &bad, &root).is_err());
                }
                // A truncated or extended path.
                if !p.is_empty() {
                    assert!(
                        verify_inclusion(m as u64, n as u64, &leaf, &p[..p.len() - 1], &root)
                            .is_err()
                    );
                }
                let mut longer = p.clone();
                longer.push(root);
                assert!(verify_inclusion(m as u64, n as u64, &leaf, &longer, &root).is_err());
            }
            assert_eq!(t.inclusion_proof(n as u64, n as u64), None);
            for m in 1..=n {
                let p = t.consistency_proof(m as u64, n as u64).expect("in range");
                assert_eq!(p, subproof(m, &leaves[..n], true), "subproof m={m} n={n}");
                let r1 = mth(&leaves[..m]);
                verify_consistency(m as u64, n as u64, &r1, &root, &p).expect("consistent");
                // A different older tree (one leaf changed) is not consistent.
                let mut changed = leaves[..m].to_vec();
                changed[m / 2][5] ^= 0x40;
                let r1bad = mth(&changed);
                assert!(verify_consistency(m as u64, n as u64, &r1bad, &root, &p).is_err());
                // The newer tree with one leaf changed is not consistent.
                let mut changed = leaves[..n].to_vec();
                changed[(m - 1).min(n - 1)][3] ^= 0x10;
                let r2bad = mth(&changed);
                assert!(verify_consistency(m as u64, n as u64, &r1, &r2bad, &p).is_err());
                // Claiming a smaller newer tree.
                if m < n {
                    let r2 = shrunk_root;
                    if m < n - 1 {
                        assert!(verify_consistency(m as u64, n as u64 - 1, &r1, &r2, &p).is_err());
                    }
                    for i in 0..p.len() {
                        let mut bad = p.clone();
                        bad[i][31] ^= 1;
                        assert!(verify_consistency(m as u64, n as u64, &r1, &root, &bad).is_err());
                    }
                }
            }
            assert_eq!(t.consistency_proof(0, n as u64), None);
            assert_eq!(t.consistency_proof(n as u64, 65), None);
        }
        assert_eq!(t.root_at(65), None);
    }

    #[test]
    fn larger_random_trees() {
        // splitmix64: deterministic, no dependency.
        let mut s = 0x5eed_u64;
        let mut next = move || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let leaves = chain(3000, 2);
        let t = tree(&leaves);
        for _ in 0..40 {
            let n = 1 + (next() % 3000) as usize;
            let root = mth(&leaves[..n]);
            assert_eq!(t.root_at(n as u64), Some(root));
            let m = (next() % n as u64) as usize;
            let p = t.inclusion_proof(m as u64, n as u64).expect("in range");
            assert_eq!(p, path(m, &leaves[..n]));
            verify_inclusion(m as u64, n as u64, &leaf_hash(&leaves[m]), &p, &root)
                .expect("verifies");
            let f = 1 + (next() % n as u64) as usize;
            let c = t.consistency_proof(f as u64, n as u64).expect("in range");
            assert_eq!(c, subproof(f, &leaves[..n], true));
            verify_consistency(f as u64, n as u64, &mth(&leaves[..f]), &root, &c)
                .expect("consistent");
            if f < n {
                let r1bad = mth(&leaves[1..=f]);
                assert!(verify_consistency(f as u64, n as u64, &r1bad, &root, &c).is_err());
            }
        }
    }

    #[test]
    fn frontier_round_trips_through_parts() {
        let leaves = chain(37, 3);
        let t = tree(&leaves);
        let f = t.frontier_at(37).expect("in range");
        assert_eq!(f.nodes().len(), 3);
        let g = Frontier::from_parts(f.size(), f.nodes().to_vec()).expect("valid");
        assert_eq!(g.root(), t.root());
        assert!(Frontier::from_parts(37, vec![]).is_none());
    }

    #[test]
    fn hostile_sizes_do_not_panic() {
        let r = [0u8; 32];
        assert!(verify_inclusion(u64::MAX - 1, u64::MAX, &r, &[r; 64], &r).is_err());
        assert!(verify_inclusion(0, 0, &r, &[], &r).is_err());
        assert!(verify_consistency(1, u64::MAX, &r, &r, &[r; 70]).is_err());
        assert!(verify_consistency(u64::MAX, u64::MAX, &r, &r, &[]).is_ok());
        assert!(verify_consistency(3, 2, &r, &r, &[]).is_err());
        assert!(verify_consistency(2, 3, &r, &r, &[]).is_err());
        let t = MerkleTree::new();
        assert_eq!(t.inclusion_proof(0, 0), None);
        assert_eq!(t.consistency_proof(1, 1), None);
    }
}
