package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/y"
	"google.golang.org/protobuf/proto"
)

// errIndexFiles marks an index directory whose files fail checkIndexFiles.
var errIndexFiles = errors.New("index files damaged")

// checkIndexFiles looks at badger's files before badger opens them. badger
// decodes each table's footer in goroutines of its own, where a truncated
// .sst makes it slice out of range and crash the process: no recover in
// cairn can reach those goroutines. So the checks below repeat, with bounds
// checked, what badger reads at open: the MANIFEST (which tables exist) and
// each listed table's footer and the checksum of its index block.
//
// A MANIFEST cut short is damage too, although badger would accept it: it
// treats a torn last record as a crash during an append and drops it, with
// the tables that record named. A SIGKILL cannot tear the one write(2) that
// appends a record, so a short MANIFEST means the file was damaged, and
// opening it would silently lose index entries.
func checkIndexFiles(dir string, opts badger.Options) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read index directory: %w", err)
	}
	tables := make(map[uint64]string)
	for _, e := range ents {
		// Parsed here, not with table.ParseFileID, which aborts the
		// process on a name like "-1.sst".
		num, ok := strings.CutSuffix(e.Name(), ".sst")
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			return fmt.Errorf("unexpected file %s: %w", e.Name(), errIndexFiles)
		}
		tables[id] = filepath.Join(dir, e.Name())
	}
	mf, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, os.ErrNotExist) {
		if len(tables) > 0 {
			return fmt.Errorf("%d tables but no %s: %w", len(tables), badger.ManifestFilename, errIndexFiles)
		}
		return nil // a new index, or one badger never got to write
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", badger.ManifestFilename, err)
	}
	defer mf.Close()
	st, err := mf.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", badger.ManifestFilename, err)
	}
	m, end, err := badger.ReplayManifestFile(mf, opts.ExternalMagicVersion, opts)
	if err != nil {
		return fmt.Errorf("%s: %v: %w", badger.ManifestFilename, err, errIndexFiles)
	}
	if end != st.Size() {
		return fmt.Errorf("%s ends in a partial record at byte %d of %d: %w", badger.ManifestFilename, end, st.Size(), errIndexFiles)
	}
	if err := checkDataKeys(dir, opts, m); err != nil {
		return err
	}
	for id := range m.Tables {
		path, ok := tables[id]
		if !ok {
			return fmt.Errorf("table %d listed in %s is missing: %w", id, badger.ManifestFilename, errIndexFiles)
		}
		if err := checkTableFooter(path); err != nil {
			return err
		}
	}
	// A table on disk that the MANIFEST does not list is either the output
	// of a flush or compaction killed before its record was appended, or
	// the sign of a MANIFEST cut exactly at a record boundary. Only a
	// rebuild is right for the second; it is merely slow for the first.
	for id, path := range tables {
		if _, ok := m.Tables[id]; !ok {
			return fmt.Errorf("table %s is not listed in %s: %w", filepath.Base(path), badger.ManifestFilename, errIndexFiles)
		}
	}
	return nil
}

// checkTableFooter checks one badger table from its end, as table.OpenTable
// reads it: checksum length (4 bytes, big-endian), checksum (protobuf),
// index length (4 bytes), index block; the checksum must match the index
// block as stored (encrypted or not).
func checkTableFooter(path string) error {
	name := filepath.Base(path)
	bad := func(what string, args ...any) error {
		return fmt.Errorf("table %s: %s: %w", name, fmt.Sprintf(what, args...), errIndexFiles)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open table %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat table %s: %w", name, err)
	}
	size := st.Size()
	read := func(off, n int64) ([]byte, error) {
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read table %s: %w", name, err)
		}
		return b, nil
	}
	if size < 8 {
		return bad("%d bytes, too short for a footer", size)
	}
	b, err := read(size-4, 4)
	if err != nil {
		return err
	}
	chkLen := int64(binary.BigEndian.Uint32(b))
	if chkLen > size-8 {
		return bad("checksum length %d exceeds the file's %d bytes", chkLen, size)
	}
	b, err = read(size-4-chkLen, chkLen)
	if err != nil {
		return err
	}
	var chk pb.Checksum
	if err := proto.Unmarshal(b, &chk); err != nil {
		return bad("checksum does not decode: %v", err)
	}
	if chk.Algo != pb.Checksum_CRC32C && chk.Algo != pb.Checksum_XXHash64 {
		return bad("unknown checksum algorithm %d", chk.Algo)
	}
	idxEnd := size - 8 - chkLen
	b, err = read(idxEnd, 4)
	if err != nil {
		return err
	}
	idxLen := int64(binary.BigEndian.Uint32(b))
	if idxLen == 0 || idxLen > idxEnd {
		return bad("index length %d does not fit in the file's %d bytes", idxLen, size)
	}
	idx, err := read(idxEnd-idxLen, idxLen)
	if err != nil {
		return err
	}
	if err := y.VerifyChecksum(idx, &chk); err != nil {
		return bad("index block checksum: %v", err)
	}
	return nil
}

// checkDataKeys checks, in an encrypted index, that every data key a table
// or log file was written with is still in the KEYREGISTRY. One lost by
// damage is worse than a missing table: badger hands its ID to the next key
// it makes, then decrypts the old files with that new key and crashes on the
// garbage.
func checkDataKeys(dir string, opts badger.Options, m badger.Manifest) error {
	if len(opts.EncryptionKey) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, badger.KeyRegistryFileName)); errors.Is(err, os.ErrNotExist) && len(m.Tables) == 0 {
		return nil
	}
	kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{
		Dir: dir, ReadOnly: true, EncryptionKey: opts.EncryptionKey,
		EncryptionKeyRotationDuration: opts.EncryptionKeyRotationDuration,
	})
	if err != nil {
		return fmt.Errorf("%s: %w: %w", badger.KeyRegistryFileName, err, errIndexFiles)
	}
	defer kr.Close()
	need := make(map[uint64]string)
	for id, tm := range m.Tables {
		need[tm.KeyID] = fmt.Sprintf("table %d", id)
	}
	// Log files (.vlog, .mem) start with the ID of their data key, 8 bytes
	// big-endian, then the 12-byte IV.
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read index directory: %w", err)
	}
	for _, e := range ents {
		if ext := filepath.Ext(e.Name()); ext != ".vlog" && ext != ".mem" {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("open %s: %w", e.Name(), err)
		}
		var hdr [8]byte
		_, err = io.ReadFull(f, hdr[:])
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: header: %v: %w", e.Name(), err, errIndexFiles)
		}
		need[binary.BigEndian.Uint64(hdr[:])] = e.Name()
	}
	for id, who := range need {
		if id == 0 {
			continue
		}
		if _, err := kr.DataKey(id); err != nil {
			return fmt.Errorf("%s: data key %d of %s: %w: %w", badger.KeyRegistryFileName, id, who, err, errIndexFiles)
		}
	}
	return nil
}
