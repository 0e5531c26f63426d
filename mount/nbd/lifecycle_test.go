package nbd

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestShutdownDrains(t *testing.T) {
	v := &memVolume{data: testImage(), delay: 300 * time.Millisecond}
	s, addr := startServer(t, testCatalog(v), Options{})
	c := dial(t, addr)
	c.handshake(clientFlagFixedNewstyle)
	c.goExport("disk", false)
	c.request(0, cmdRead, 1, 0, 4096, nil)
	time.Sleep(50 * time.Millisecond) // the request is in flight
	idle := dial(t, addr)             // still negotiating: dropped at once
	idle.handshake(clientFlagFixedNewstyle)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Errorf("shutdown returned before the in-flight read finished")
	}
	if k := c.next(map[uint64]int{1: 4096}); k.errno != 0 || !bytes.Equal(k.payload, v.data[:4096]) {
		t.Fatalf("in-flight read during shutdown: errno %d", k.errno)
	}
	c.expectClosed()
	idle.expectClosed()
	if _, err := dialErr(addr); err == nil {
		t.Errorf("the listener still accepts after shutdown")
	}
}

func TestHandshakeTimeout(t *testing.T) {
	_, addr := startServer(t, testCatalog(&memVolume{data: testImage()}), Options{HandshakeTimeout: 200 * time.Millisecond})
	c := dial(t, addr)
	c.handshake(clientFlagFixedNewstyle)
	start := time.Now()
	c.expectClosed()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("idle handshake dropped after %v", d)
	}
}

func TestServeReturnsWhenListenerCloses(t *testing.T) {
	l, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(memCatalog{}, Options{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), l) }()
	l.Close()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve returned %v, want the accept error", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return after its listener closed")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(context.Background(), mustListen(t)); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func TestLookupErrorMessageHidesCause(t *testing.T) {
	cat := failingCatalog{}
	_, addr := startServer(t, cat, Options{})
	c := dial(t, addr)
	c.handshake(clientFlagFixedNewstyle)
	c.option(optGo, infoData("x"))
	r := c.reply()
	if r.typ != repErrUnknown || strings.Contains(string(r.data), "secret") {
		t.Fatalf("reply %#x %q", r.typ, r.data)
	}
}

type failingCatalog struct{}

func (failingCatalog) Lookup(context.Context, string) (*Export, error) {
	return nil, errors.New("disk on fire near /secret/path")
}
func (failingCatalog) List(context.Context) ([]ExportInfo, error) { return nil, nil }
