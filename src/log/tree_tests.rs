//! The tree against RFC 9162's own definitions, written out independently here (MTH §2.1.1,
//! PATH §2.1.3.1, PROOF §2.1.4.1, and the verification algorithms of §2.1.3.2 and §2.1.4.2,
//! hashing with `sha2` directly), and against the RFC 6962 reference vectors.

use super::tree::{self, EMPTY_ROOT};
use super::*;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Hash(h.finalize().into())
}

fn node(l: &Hash, r: &Hash) -> Hash {
    sha256(&[&[1], &l.0, &r.0])
}

fn h(hex: &str) -> Hash {
    Hash::from_hex(hex).unwrap()
}

/// The largest power of two smaller than n (n > 1): RFC 9162 §2.1.1's k.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// RFC 9162's recursive definitions over a fixed list of entries. Subtree heads are memoised by
/// range only so that trees of a few hundred entries stay fast; the recursion is the RFC's.
struct Rfc {
    leaves: Vec<Hash>,
    memo: RefCell<HashMap<(usize, usize), Hash>>,
}

impl Rfc {
    fn new<E: AsRef<[u8]>>(entries: &[E]) -> Self {
        let leaves = entries.iter().map(|e| sha256(&[&[0], e.as_ref()])).collect();
        Rfc { leaves, memo: RefCell::new(HashMap::new()) }
    }

    /// MTH(D[lo:hi]).
    fn mth(&self, lo: usize, hi: usize) -> Hash {
        if let Some(h) = self.memo.borrow().get(&(lo, hi)) {
            return *h;
        }
        let h = match hi - lo {
            0 => sha256(&[]),
            1 => self.leaves[lo],
            n => {
                let k = split(n);
                node(&self.mth(lo, lo + k), &self.mth(lo + k, hi))
            }
        };
        self.memo.borrow_mut().insert((lo, hi), h);
        h
    }

    /// PATH(m, D[lo:hi]), m relative to lo.
    fn path(&self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
        let n = hi - lo;
        if n == 1 {
            return vec![];
        }
        let k = split(n);
        if m < k {
            let mut p = self.path(m, lo, lo + k);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.path(m - k, lo + k, hi);
            p.push(self.mth(lo, lo + k));
            p
        }
    }

    /// SUBPROOF(m, D[lo:hi], b).
    fn subproof(&self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<Hash> {
        let n = hi - lo;
        if m == n {
            return if b { vec![] } else { vec![self.mth(lo, hi)] };
        }
        let k = split(n);
        if m <= k {
            let mut p = self.subproof(m, lo, lo + k, b);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.subproof(m - k, lo + k, hi, false);
            p.push(self.mth(lo, lo + k));
            p
        }
    }

    fn proof(&self, m: usize, n: usize) -> Vec<Hash> {
        self.subproof(m, 0, n, true)
    }
}

/// RFC 9162 §2.1.3.2, step by step.
fn rfc_verify_inclusion(leaf_index: u64, tree_size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if leaf_index >= tree_size {
        return false;
    }
    let (mut fn_, mut sn, mut r) = (leaf_index, tree_size - 1, *leaf);
    for p in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// RFC 9162 §2.1.4.2, step by step (0 < first < second).
fn rfc_verify_consistency(first: u64, second: u64, first_hash: &Hash, second_hash: &Hash, path: &[Hash]) -> bool {
    if path.is_empty() {
        return false;
    }
    let mut path = path.to_vec();
    if first.is_power_of_two() {
        path.insert(0, *first_hash);
    }
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node(c, &fr);
            sr = node(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *first_hash && sr == *second_hash && sn == 0
}

fn build<E: AsRef<[u8]>>(entries: &[E]) -> (MemoryHashes, Vec<Hash>) {
    // One entry at a time, so that the roots of every intermediate size come out of `append`.
    let mut store = MemoryHashes::new();
    let mut roots = vec![EMPTY_ROOT];
    for (i, e) in entries.iter().enumerate() {
        let a = tree::append(TreeSize(i as u64), &[e.as_ref()], &store).unwrap();
        store.extend_at(a.first_index, &a.hashes).unwrap();
        roots.push(a.root);
    }
    (store, roots)
}

// RFC 6962 reference test data: the leaves, tree heads and proofs of Certificate
// Transparency's merkle_tree_test, as kept in transparency-dev/merkle proof/verify_test.go.
const CT_LEAVES: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn ct_tree() -> (MemoryHashes, Vec<Hash>) {
    let leaves: Vec<Vec<u8>> = CT_LEAVES.iter().map(|l| hex::decode(l).unwrap()).collect();
    build(&leaves)
}

#[test]
fn rfc6962_reference_tree_heads() {
    let (store, roots) = ct_tree();
    for (size, want) in CT_ROOTS.iter().enumerate() {
        assert_eq!(roots[size], h(want), "append, size {size}");
        assert_eq!(tree::tree_hash(TreeSize(size as u64), &store).unwrap(), h(want), "tree_hash, size {size}");
    }
    assert_eq!(EMPTY_ROOT, h(CT_ROOTS[0]));
}

#[test]
fn rfc6962_reference_inclusion_proofs() {
    let (store, _) = ct_tree();
    let vectors: [(u64, u64, &[&str]); 5] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (leaf, size, want) in vectors {
        let want = InclusionProof(want.iter().map(|x| h(x)).collect());
        let got = tree::prove_inclusion(LeafIndex(leaf), TreeSize(size), &store).unwrap();
        assert_eq!(got, want, "leaf {leaf} size {size}");
        let leaf_hash = tree::leaf_hash(&hex::decode(CT_LEAVES[leaf as usize]).unwrap());
        let root = h(CT_ROOTS[size as usize]);
        tree::verify_inclusion(&leaf_hash, LeafIndex(leaf), TreeSize(size), &root, &want).unwrap();
        assert!(rfc_verify_inclusion(leaf, size, &leaf_hash, &want.0, &root));
    }
}

#[test]
fn rfc6962_reference_consistency_proofs() {
    let (store, _) = ct_tree();
    let vectors: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (m, n, want) in vectors {
        let want = ConsistencyProof(want.iter().map(|x| h(x)).collect());
        let got = tree::prove_consistency(TreeSize(m), TreeSize(n), &store).unwrap();
        assert_eq!(got, want, "{m} → {n}");
        let (r1, r2) = (h(CT_ROOTS[m as usize]), h(CT_ROOTS[n as usize]));
        tree::verify_consistency(TreeSize(m), &r1, TreeSize(n), &r2, &want).unwrap();
        assert!(m == n || rfc_verify_consistency(m, n, &r1, &r2, &want.0));
    }
}

#[test]
fn hand_derived_three_entry_tree() {
    // MTH(a,b,c) = H(1 ‖ H(1 ‖ H(0‖a) ‖ H(0‖b)) ‖ H(0‖c)), spelt out with sha2 alone.
    let la = sha256(&[b"\x00a"]);
    let lb = sha256(&[b"\x00b"]);
    let lc = sha256(&[b"\x00c"]);
    let ab = sha256(&[b"\x01", &la.0, &lb.0]);
    let root = sha256(&[b"\x01", &ab.0, &lc.0]);
    let (store, roots) = build(&[b"a", b"b", b"c"]);
    assert_eq!(roots[3], root);
    assert_eq!(roots[2], ab);
    assert_eq!(roots[1], la);
    // Leaf b's audit path is [H(0‖a), H(0‖c)]; leaf c's is [ab].
    assert_eq!(tree::prove_inclusion(LeafIndex(1), TreeSize(3), &store).unwrap().0, vec![la, lc]);
    assert_eq!(tree::prove_inclusion(LeafIndex(2), TreeSize(3), &store).unwrap().0, vec![ab]);
    // From size 2 (a perfect tree the verifier already has) to 3, the proof is [H(0‖c)];
    // from size 1 it is [H(0‖b), H(0‖c)].
    assert_eq!(tree::prove_consistency(TreeSize(2), TreeSize(3), &store).unwrap().0, vec![lc]);
    assert_eq!(tree::prove_consistency(TreeSize(1), TreeSize(3), &store).unwrap().0, vec![lb, lc]);
    // The stored hashes are exactly H(0‖a), H(0‖b), ab, H(0‖c): 3 entries, 4 stored hashes.
    assert_eq!(store.hashes(), &[la, lb, ab, lc]);
}

fn entries(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("entry {i}").into_bytes()).collect()
}

fn flipped(proof: &[Hash], i: usize) -> Vec<Hash> {
    let mut p = proof.to_vec();
    p[i].0[i % 32] ^= 0x10;
    p
}

#[test]
fn every_size_up_to_300_matches_the_rfc_definition() {
    let data = entries(300);
    let rfc = Rfc::new(&data);
    let (store, roots) = build(&data);
    for (n, root) in roots.iter().enumerate() {
        let size = TreeSize(n as u64);
        assert_eq!(*root, rfc.mth(0, n), "append root, size {n}");
        assert_eq!(tree::tree_hash(size, &store).unwrap(), *root, "tree_hash, size {n}");
        for m in 0..n {
            let leaf = LeafIndex(m as u64);
            let proof = tree::prove_inclusion(leaf, size, &store).unwrap();
            assert_eq!(proof.0, rfc.path(m, 0, n), "PATH({m}, D[{n}])");
            let lh = rfc.leaves[m];
            tree::verify_inclusion(&lh, leaf, size, root, &proof).unwrap();
            assert!(rfc_verify_inclusion(m as u64, n as u64, &lh, &proof.0, root));
            // Another leaf's index fails with this leaf's proof.
            if n > 1 && n <= 100 {
                let other = LeafIndex(((m + 1) % n) as u64);
                assert!(tree::verify_inclusion(&lh, other, size, root, &proof).is_err());
            }
        }
    }
}

#[test]
fn every_inclusion_proof_with_a_flipped_hash_fails() {
    let data = entries(100);
    let (store, roots) = build(&data);
    for (n, root) in roots.iter().enumerate().skip(1) {
        let size = TreeSize(n as u64);
        for (m, entry) in data.iter().enumerate().take(n) {
            let leaf = LeafIndex(m as u64);
            let proof = tree::prove_inclusion(leaf, size, &store).unwrap();
            let lh = tree::leaf_hash(entry);
            for i in 0..proof.0.len() {
                let bad = InclusionProof(flipped(&proof.0, i));
                let r = tree::verify_inclusion(&lh, leaf, size, root, &bad);
                assert!(matches!(r, Err(LogError::InvalidProof)), "leaf {m} size {n} hash {i}");
                assert!(!rfc_verify_inclusion(m as u64, n as u64, &lh, &bad.0, root));
            }
            // Dropping or adding a hash fails too.
            if let Some((_, shorter)) = proof.0.split_last() {
                let bad = InclusionProof(shorter.to_vec());
                assert!(tree::verify_inclusion(&lh, leaf, size, root, &bad).is_err());
            }
            let mut longer = proof.0.clone();
            longer.push(*root);
            assert!(tree::verify_inclusion(&lh, leaf, size, root, &InclusionProof(longer)).is_err());
        }
    }
}

fn check_pair(rfc: &Rfc, store: &MemoryHashes, roots: &[Hash], m: usize, n: usize) {
    let (old, new) = (TreeSize(m as u64), TreeSize(n as u64));
    let proof = tree::prove_consistency(old, new, store).unwrap();
    let want = if m == 0 { vec![] } else { rfc.proof(m, n) };
    assert_eq!(proof.0, want, "PROOF({m}, D[{n}])");
    tree::verify_consistency(old, &roots[m], new, &roots[n], &proof).unwrap();
    if 0 < m && m < n {
        assert!(rfc_verify_consistency(m as u64, n as u64, &roots[m], &roots[n], &proof.0), "{m} → {n}");
    }
    for i in 0..proof.0.len() {
        let bad = ConsistencyProof(flipped(&proof.0, i));
        let r = tree::verify_consistency(old, &roots[m], new, &roots[n], &bad);
        assert!(matches!(r, Err(LogError::InvalidProof)), "{m} → {n}, hash {i}");
        assert!(!rfc_verify_consistency(m as u64, n as u64, &roots[m], &roots[n], &bad.0));
    }
    // The wrong old root, or the proof for another pair, fails.
    if m > 0 && m < n {
        assert!(tree::verify_consistency(old, &roots[m - 1], new, &roots[n], &proof).is_err());
        assert!(tree::verify_consistency(old, &roots[m], new, &roots[n - 1], &proof).is_err());
    }
}

#[test]
fn consistency_between_every_pair_up_to_64() {
    let data = entries(64);
    let rfc = Rfc::new(&data);
    let (store, roots) = build(&data);
    for n in 0..=64 {
        for m in 0..=n {
            check_pair(&rfc, &store, &roots, m, n);
        }
    }
}

#[test]
fn consistency_sampled_up_to_300() {
    let data = entries(300);
    let rfc = Rfc::new(&data);
    let (store, roots) = build(&data);
    for n in (65..=300).step_by(7).chain([128, 255, 256, 257, 300]) {
        for m in (1..=n).step_by(5).chain([1, 2, 63, 64, 65, 127, 128, n - 1, n]).filter(|&m| m <= n) {
            check_pair(&rfc, &store, &roots, m, n);
        }
    }
}

#[test]
fn appending_in_batches_equals_appending_one_by_one() {
    let data = entries(200);
    let (one_by_one, roots) = build(&data);
    let mut batched = MemoryHashes::new();
    let mut size = 0usize;
    for batch in [1usize, 2, 5, 0, 64, 100, 28] {
        let a = tree::append(TreeSize(size as u64), &data[size..size + batch], &batched).unwrap();
        assert_eq!(a.first_index, HashIndex::end(TreeSize(size as u64)));
        batched.extend_at(a.first_index, &a.hashes).unwrap();
        size += batch;
        assert_eq!(a.new_size, TreeSize(size as u64));
        assert_eq!(a.root, roots[size]);
    }
    assert_eq!(batched, one_by_one);
}

#[test]
fn subtree_roots_alone_extend_the_tree() {
    // An auditor that kept only the subtree roots of size m can append and reach the head.
    let data = entries(100);
    let (store, roots) = build(&data);
    for m in [0usize, 1, 3, 64, 77] {
        let idx = tree::subtree_roots(TreeSize(m as u64)).unwrap();
        let kept: PrefetchedHashes = idx.iter().copied().zip(store.read_hashes(&idx).unwrap()).collect();
        assert_eq!(tree::tree_hash(TreeSize(m as u64), &kept).unwrap(), roots[m]);
        let a = tree::append(TreeSize(m as u64), &data[m..], &kept).unwrap();
        assert_eq!(a.root, roots[100]);
    }
}

#[test]
fn bad_requests_are_errors() {
    let (store, roots) = build(&entries(10));
    assert!(matches!(tree::prove_inclusion(LeafIndex(10), TreeSize(10), &store), Err(LogError::LeafOutOfRange { .. })));
    assert!(matches!(tree::prove_consistency(TreeSize(5), TreeSize(4), &store), Err(LogError::SizesOutOfOrder { .. })));
    // Beyond the stored tree: the missing hash is named.
    assert!(matches!(tree::prove_inclusion(LeafIndex(3), TreeSize(11), &store), Err(LogError::MissingHash(_))));
    assert!(matches!(tree::tree_hash(TreeSize(12), &store), Err(LogError::MissingHash(_))));
    // Proofs longer than any tree allows are refused outright.
    let long = InclusionProof(vec![Hash::default(); 65]);
    assert!(tree::verify_inclusion(&roots[1], LeafIndex(0), TreeSize(u64::MAX), &roots[1], &long).is_err());
    let long = ConsistencyProof(vec![Hash::default(); 1000]);
    assert!(tree::verify_consistency(TreeSize(3), &roots[3], TreeSize(10), &roots[10], &long).is_err());
    // The empty tree is consistent with everything, with an empty proof and the empty root.
    let empty = ConsistencyProof::default();
    tree::verify_consistency(TreeSize(0), &EMPTY_ROOT, TreeSize(10), &roots[10], &empty).unwrap();
    assert!(tree::verify_consistency(TreeSize(0), &roots[1], TreeSize(10), &roots[10], &empty).is_err());
    // Equal sizes: the roots must be equal and the proof empty.
    tree::verify_consistency(TreeSize(10), &roots[10], TreeSize(10), &roots[10], &empty).unwrap();
    assert!(tree::verify_consistency(TreeSize(10), &roots[9], TreeSize(10), &roots[10], &empty).is_err());
    // Hostile sizes do not panic.
    assert!(matches!(tree::tree_hash(TreeSize(u64::MAX), &store), Err(LogError::TreeTooLarge)));
    assert!(matches!(tree::prove_inclusion(LeafIndex(1), TreeSize(u64::MAX), &store), Err(LogError::TreeTooLarge)));
    assert!(matches!(tree::prove_consistency(TreeSize(1), TreeSize(u64::MAX), &store), Err(LogError::TreeTooLarge)));
    assert!(matches!(tree::append(TreeSize(u64::MAX), &[b"x"], &store), Err(LogError::TreeTooLarge)));
    let p = ConsistencyProof(vec![Hash::default(); 3]);
    assert!(tree::verify_consistency(TreeSize(u64::MAX - 1), &roots[1], TreeSize(u64::MAX), &roots[1], &p).is_err());
    assert!(tree::verify_inclusion(
        &roots[1],
        LeafIndex(u64::MAX - 1),
        TreeSize(u64::MAX),
        &roots[1],
        &InclusionProof(vec![Hash::default(); 64])
    )
    .is_err());
}
