package dedup

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/argon2"

	"cairn/dedup/pack"
)

// KDFParams records how the master key is derived from a passphrase, so a
// repository stays openable when defaults change.
type KDFParams struct {
	Algorithm string `json:"algorithm"` // "argon2id"
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
}

func defaultKDF() (KDFParams, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return KDFParams{}, err
	}
	return KDFParams{Algorithm: "argon2id", Time: 3, MemoryKiB: 64 * 1024, Threads: 2, Salt: salt}, nil
}

func (p KDFParams) derive(secret []byte) ([]byte, error) {
	if p.Algorithm != "argon2id" {
		return nil, fmt.Errorf("kdf %q: %w", p.Algorithm, ErrUnsupported)
	}
	// Upper bounds keep a tampered config from making open exhaust memory.
	if p.Time == 0 || p.Time > 64 || p.MemoryKiB < 8 || p.MemoryKiB > 4<<20 || p.Threads == 0 || len(p.Salt) < 8 {
		return nil, fmt.Errorf("kdf parameters out of range: %w", ErrCorrupt)
	}
	return argon2.IDKey(secret, p.Salt, p.Time, p.MemoryKiB, p.Threads, 32), nil
}

// sealer encrypts blobs with AES-256-GCM. A nil *sealer means the repository
// is not encrypted; its methods then pass data through.
type sealer struct {
	aead cipher.AEAD
}

const nonceSize = 12

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal appends nonce‖ciphertext‖tag of plain to dst. The additional data binds
// the ciphertext to its identity (chunk ID, object name), so a blob moved to
// another place fails to open instead of being read as something else.
func (s *sealer) seal(dst, plain, ad []byte) []byte {
	if s == nil {
		return append(dst, plain...)
	}
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the OS RNG never fails on Linux
	}
	dst = append(dst, nonce[:]...)
	return s.aead.Seal(dst, nonce[:], plain, ad)
}

func (s *sealer) open(dst, sealed, ad []byte) ([]byte, error) {
	if s == nil {
		return append(dst, sealed...), nil
	}
	if len(sealed) < nonceSize+s.aead.Overhead() {
		return nil, fmt.Errorf("sealed blob of %d bytes is too short: %w", len(sealed), ErrCorrupt)
	}
	out, err := s.aead.Open(dst, sealed[:nonceSize], sealed[nonceSize:], ad)
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", ErrCorrupt)
	}
	return out, nil
}

// openInPlace is open with the plaintext written over sealed: no
// allocation. Without a sealer sealed is the plaintext.
func (s *sealer) openInPlace(sealed, ad []byte) ([]byte, error) {
	if s == nil {
		return sealed, nil
	}
	if len(sealed) < nonceSize+s.aead.Overhead() {
		return nil, fmt.Errorf("sealed blob of %d bytes is too short: %w", len(sealed), ErrCorrupt)
	}
	ct := sealed[nonceSize:]
	out, err := s.aead.Open(ct[:0], sealed[:nonceSize], ct, ad)
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", ErrCorrupt)
	}
	return out, nil
}

func (s *sealer) overhead() int {
	if s == nil {
		return 0
	}
	return nonceSize + s.aead.Overhead()
}

// ChunkID identifies a chunk by a keyed BLAKE3 hash of its plaintext. The key
// is secret to the repository, so nobody without it can craft a block whose
// ID collides with another's, nor test whether the repository holds a block.
type ChunkID = pack.ChunkID

type hasher struct {
	key [32]byte
	// pageSeed seeds the page hashes of delta comparisons (delta.go):
	// derived from the key, so they differ from repository to repository.
	// They are not cryptographic; a collision would make a delta take an
	// old page for a new one, and the chunk ID, checked over every block
	// a restore or verify reads whole, would refuse the block.
	pageSeed uint64
}

func (h *hasher) setKey(key []byte) {
	copy(h.key[:], key)
	s := h.stream()
	_, _ = s.Write([]byte("cairn page hashes"))
	var b [8]byte
	s.Sum(b[:0])
	h.pageSeed = binary.LittleEndian.Uint64(b[:])
}

func (h *hasher) id(data []byte) ChunkID {
	hh := h.stream()
	_, _ = hh.Write(data)
	var id ChunkID
	hh.Sum(id[:0])
	return id
}

// stream returns a hasher of chunk IDs fed piece by piece.
func (h *hasher) stream() *blake3.Hasher {
	hh, _ := blake3.NewKeyed(h.key[:]) // key length is fixed at 32: cannot fail
	return hh
}
