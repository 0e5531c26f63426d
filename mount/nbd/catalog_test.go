package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"cairn/dedup"
	"cairn/dedup/deduptest"
)

// backupTwo backs up two sources into a test repository.
func backupTwo(t *testing.T) (*dedup.Repository, []byte, *dedup.Checkpoint, *dedup.Checkpoint) {
	t.Helper()
	ctx := context.Background()
	repo := deduptest.Repository(t)
	img := testImage()
	a, err := repo.Backup(ctx, deduptest.Source("/img/a", img), dedup.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := repo.Backup(ctx, deduptest.Source("/img/b", bytes.Repeat([]byte{7}, 256<<10)), dedup.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return repo, img, a, b
}

func TestCheckpointCatalog(t *testing.T) {
	ctx := context.Background()
	repo, img, a, b := backupTwo(t)
	cat, err := NewCheckpointCatalog(repo, CatalogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()

	for name, want := range map[string]*dedup.Checkpoint{
		a.ID: a, b.ID: b, "/img/a/" + a.ID: a, "/img/b/" + b.ID[:len(b.ID)-2]: b,
		"/img/b/" + a.ID: nil, "": nil, "nope": nil, "/img/a/": nil,
	} {
		exp, err := cat.Lookup(ctx, name)
		switch {
		case want == nil && !errors.Is(err, ErrUnknownExport):
			t.Errorf("Lookup(%q) = %v, want ErrUnknownExport", name, err)
		case want != nil && (err != nil || exp.Name != want.ID || exp.Device.Size() != want.Size):
			t.Errorf("Lookup(%q) = %+v, %v, want %s", name, exp, err, want.ID)
		}
	}
	infos, err := cat.List(ctx)
	if err != nil || len(infos) != 2 || infos[0].Name != a.ID || infos[0].Description != Describe(a) {
		t.Fatalf("List = %+v, %v", infos, err)
	}

	// The export reads the checkpoint through the protocol, holes included.
	_, addr := startServer(t, cat, Options{})
	c := dial(t, addr)
	c.handshake(clientFlagFixedNewstyle)
	c.goExport("/img/a/"+a.ID, true)
	c.request(0, cmdRead, 1, 0, 1<<20, nil)
	if data, types, errno := c.readStructured(1, 0, 1<<20); errno != 0 || !bytes.Equal(data, img) || len(types) < 3 {
		t.Fatalf("read the checkpoint: errno %d, chunks %v", errno, types)
	}
}

func TestCheckpointCatalogSecret(t *testing.T) {
	ctx := context.Background()
	repo, _, a, _ := backupTwo(t)
	if _, err := NewCheckpointCatalog(repo, CatalogOptions{Secret: "a/b"}); err == nil {
		t.Fatal("a secret with '/' was accepted")
	}
	cat, err := NewCheckpointCatalog(repo, CatalogOptions{Secret: "s3cret-token"})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	for _, name := range []string{a.ID, "s3cret-toke/" + a.ID, "s3cret-token", "/img/a/" + a.ID} {
		if _, err := cat.Lookup(ctx, name); !errors.Is(err, ErrUnknownExport) {
			t.Errorf("Lookup(%q) without the secret: %v", name, err)
		}
	}
	for _, name := range []string{"s3cret-token/" + a.ID, "s3cret-token//img/a/" + a.ID} {
		if exp, err := cat.Lookup(ctx, name); err != nil || exp.Name != "s3cret-token/"+a.ID {
			t.Errorf("Lookup(%q) with the secret: %+v, %v", name, exp, err)
		}
	}
	if infos, err := cat.List(ctx); err != nil || len(infos) != 0 {
		t.Errorf("List with a secret: %+v, %v", infos, err)
	}
}

func TestWritableCheckpoint(t *testing.T) {
	ctx := context.Background()
	repo, img, a, _ := backupTwo(t)
	dir := t.TempDir()
	serve := func() (*testClient, *CheckpointCatalog) {
		cat, err := NewCheckpointCatalog(repo, CatalogOptions{Writable: true, OverlayDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		_, addr := startServer(t, cat, Options{})
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle)
		_, flags := c.goExport(a.ID, true)
		want := tflagSendFlush | tflagSendFUA | tflagSendTrim | tflagSendWriteZeroes
		if flags&want != want || flags&tflagReadOnly != 0 {
			t.Fatalf("writable export flags %#x", flags)
		}
		return c, cat
	}
	c, cat := serve()
	model := bytes.Clone(img)
	c.request(cmdFlagFUA, cmdWrite, 1, 1000, 5, []byte("hello"))
	c.request(0, cmdTrim, 2, 64<<10, 128<<10, nil)
	c.request(cmdFlagNoHole, cmdWriteZeroes, 3, 500<<10, 10, nil)
	c.request(0, cmdWrite, 4, 1<<20-2, 4, []byte("over"))
	c.request(0, cmdFlush, 5, 0, 0, nil)
	copy(model[1000:], "hello")
	clear(model[64<<10 : 192<<10])
	clear(model[500<<10 : 500<<10+10])
	for range 5 {
		k := c.next(nil)
		if want := map[bool]uint32{true: errNoSpc, false: 0}[k.handle == 4]; !k.simple && binary.BigEndian.Uint32(k.payload) != want || k.simple && k.errno != want {
			t.Fatalf("reply %+v", k)
		}
	}
	c.request(0, cmdRead, 6, 0, 1<<20, nil)
	if data, _, errno := c.readStructured(6, 0, 1<<20); errno != 0 || !bytes.Equal(data, model) {
		t.Fatalf("read back: errno %d", errno)
	}
	c.request(0, cmdDisc, 7, 0, 0, nil)
	c.expectClosed()
	if err := cat.Close(); err != nil {
		t.Fatal(err)
	}

	// The repository still has the original; a new server sees the writes.
	rd, err := repo.OpenCheckpoint(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	orig := make([]byte, len(img))
	if _, err := rd.ReadAt(orig, 0); err != nil || !bytes.Equal(orig, img) {
		t.Fatalf("the checkpoint changed: %v", err)
	}
	c, _ = serve()
	c.request(0, cmdRead, 1, 0, 1<<20, nil)
	if data, _, errno := c.readStructured(1, 0, 1<<20); errno != 0 || !bytes.Equal(data, model) {
		t.Fatalf("read after restart: errno %d", errno)
	}
}
