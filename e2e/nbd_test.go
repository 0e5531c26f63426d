package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// nbdImage is the source the NBD tests back up: 8 MiB of random data with
// a 4 MiB hole at 2 MiB.
const (
	nbdSize    = 8 * mib
	nbdHoleOff = 2 * mib
	nbdHoleLen = 4 * mib
)

// nbdSetup makes a repository holding one checkpoint of a sparse image.
func nbdSetup(t *testing.T) (e *env, src, hash string, cp checkpoint) {
	t.Helper()
	e = newRepo(t, repoOpts{})
	src, hash = nbdSparseImage(t, e.scratch, nbdSize, nbdHoleOff, nbdHoleLen)
	cp = e.backup(src)
	return e, src, hash, cp
}

// TestNBDRead reads a checkpoint through `cairn nbd serve` with real
// clients: qemu-img, nbdinfo and nbdcopy.
func TestNBDRead(t *testing.T) {
	requireNBDTool(t, "qemu-img", "qemu-utils")
	requireNBDTool(t, "nbdinfo", "libnbd-bin")
	requireNBDTool(t, "nbdcopy", "libnbd-bin")
	e, src, hash, cp := nbdSetup(t)
	s := e.startNBD("")
	uri := s.uri(cp.ID)

	t.Run("qemu-img convert", func(t *testing.T) {
		out := filepath.Join(e.scratch, "convert.raw")
		mustNBDTool(t, "qemu-img", "convert", "-f", "raw", "-O", "raw", uri, out)
		if got := fileHash(t, out); got != hash {
			t.Fatalf("qemu-img convert: sha256 %s, want %s", got, hash)
		}
	})
	t.Run("qemu-img compare", func(t *testing.T) {
		out := mustNBDTool(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", uri, src)
		if !strings.Contains(out, "Images are identical") {
			t.Fatalf("qemu-img compare: %s", out)
		}
	})
	t.Run("nbdinfo map", func(t *testing.T) {
		out := mustNBDTool(t, "nbdinfo", "--map", uri)
		hole := regexp.MustCompile(fmt.Sprintf(`(?m)^\s*%d\s+%d\s+3\s+hole,zero\s*$`, nbdHoleOff, nbdHoleLen))
		data := regexp.MustCompile(`(?m)^\s*0\s+\d+\s+0\s+data\s*$`)
		if !hole.MatchString(out) || !data.MatchString(out) {
			t.Fatalf("nbdinfo --map does not show the hole at %d+%d:\n%s", nbdHoleOff, nbdHoleLen, out)
		}
	})
	t.Run("nbdcopy", func(t *testing.T) {
		out := filepath.Join(e.scratch, "nbdcopy.raw")
		writeFile(t, out, nil)
		mustNBDTool(t, "nbdcopy", uri, out)
		if got := fileHash(t, out); got != hash {
			t.Fatalf("nbdcopy: sha256 %s, want %s", got, hash)
		}
		if a := allocated(t, out); a > nbdSize-nbdHoleLen+mib {
			t.Fatalf("nbdcopy wrote a dense copy: %d bytes allocated of %d", a, nbdSize)
		}
	})
	t.Run("nbdinfo list", func(t *testing.T) {
		out := mustNBDTool(t, "nbdinfo", "--list", "nbd://"+s.addr)
		if !strings.Contains(out, cp.ID) || !strings.Contains(out, src) {
			t.Fatalf("nbdinfo --list does not list %s (%s):\n%s", cp.ID, src, out)
		}
	})
	t.Run("names", func(t *testing.T) {
		for _, name := range []string{cp.ID[:len(cp.ID)-4], src + "/" + cp.ID} {
			out := mustNBDTool(t, "nbdinfo", "--size", s.uri(name))
			if strings.TrimSpace(out) != fmt.Sprint(nbdSize) {
				t.Fatalf("nbdinfo --size %s: %s", name, out)
			}
		}
		if out, err := nbdTool(t, "nbdinfo", "--size", s.uri("no-such-checkpoint")); err == nil {
			t.Fatalf("an unknown export was served: %s", out)
		}
		if out, err := nbdQemuIO(t, uri, "write -P 0xab 0 4k"); err == nil {
			t.Fatalf("a write to a read-only export succeeded: %s", out)
		}
	})
	t.Run("unix socket", func(t *testing.T) {
		u := e.startNBD("unix:" + filepath.Join(e.scratch, "nbd.sock"))
		out := filepath.Join(e.scratch, "unix.raw")
		mustNBDTool(t, "qemu-img", "convert", "-f", "raw", "-O", "raw", u.uri(cp.ID), out)
		if got := fileHash(t, out); got != hash {
			t.Fatalf("read over a unix socket: sha256 %s, want %s", got, hash)
		}
	})
}

// TestNBDWritable writes through a writable export: the writes land in
// the overlay, survive a restart, never reach the repository, and go away
// with `cairn nbd discard`.
func TestNBDWritable(t *testing.T) {
	requireNBDTool(t, "qemu-io", "qemu-utils")
	requireNBDTool(t, "qemu-img", "qemu-utils")
	e, _, hash, cp := nbdSetup(t)
	overlays := filepath.Join(e.scratch, "overlays")
	s := e.startNBD("", "--writable", "--overlay-dir", overlays)
	uri := s.uri(cp.ID)

	if out, err := nbdQemuIO(t, uri, "write -P 0xab 0 64k"); err != nil {
		t.Fatalf("qemu-io write: %v\n%s", err, out)
	}
	if out, err := nbdQemuIO(t, uri, "write -z 3M 64k"); err != nil { // WRITE_ZEROES in the hole
		t.Fatalf("qemu-io write -z: %v\n%s", err, out)
	}
	if out, err := nbdQemuIO(t, uri, "read -P 0xab 0 64k"); err != nil {
		t.Fatalf("qemu-io read after write: %v\n%s", err, out)
	}
	if r := e.run("nbd", "discard", cp.ID, "--overlay-dir", overlays); r.code == 0 || !strings.Contains(r.stderr, "in use") {
		t.Fatalf("discard while served: %s", r)
	}

	// A restarted server still has the write.
	s.stop()
	s = e.startNBD("", "--writable", "--overlay-dir", overlays)
	if out, err := nbdQemuIO(t, s.uri(cp.ID), "read -P 0xab 0 64k"); err != nil {
		t.Fatalf("qemu-io read after restart: %v\n%s", err, out)
	}
	out := filepath.Join(e.scratch, "written.raw")
	mustNBDTool(t, "qemu-img", "convert", "-f", "raw", "-O", "raw", s.uri(cp.ID), out)
	s.stop()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range b[:64*kib] {
		if c != 0xab {
			t.Fatalf("byte %d of the written export is %#x, want 0xab", i, c)
		}
	}

	// The repository never saw the writes.
	e.must("verify", "--deep")
	e.checkRestore(cp.ID, hash, "after writes through NBD")

	// Discarding the overlay brings the checkpoint back.
	e.must("nbd", "discard", cp.ID[:len(cp.ID)-4], "--overlay-dir", overlays)
	if ids, _ := filepath.Glob(filepath.Join(overlays, "*")); len(ids) != 0 {
		t.Fatalf("discard left %v", ids)
	}
	e.mustFail("nbd", "discard", cp.ID, "--overlay-dir", overlays)
	s = e.startNBD("", "--writable", "--overlay-dir", overlays)
	mustNBDTool(t, "qemu-img", "convert", "-f", "raw", "-O", "raw", s.uri(cp.ID), out)
	if got := fileHash(t, out); got != hash {
		t.Fatalf("after discard the export has sha256 %s, want the checkpoint's %s", got, hash)
	}
}

// TestNBDSecret checks that with --secret-file an export is reachable only
// under SECRET/ID and is not listed.
func TestNBDSecret(t *testing.T) {
	requireNBDTool(t, "nbdinfo", "libnbd-bin")
	e, _, _, cp := nbdSetup(t)
	secretFile := filepath.Join(e.scratch, "nbd.secret")
	const secret = "0123456789abcdef0123456789abcdef"
	writeFile(t, secretFile, []byte(secret+"\n"))
	s := e.startNBD("", "--secret-file", secretFile)

	for _, name := range []string{cp.ID, "wrong-secret-0123456789/" + cp.ID} {
		if out, err := nbdTool(t, "nbdinfo", "--size", s.uri(name)); err == nil {
			t.Fatalf("export %q served without the secret: %s", name, out)
		}
	}
	if out := mustNBDTool(t, "nbdinfo", "--size", s.uri(secret+"/"+cp.ID)); strings.TrimSpace(out) != fmt.Sprint(nbdSize) {
		t.Fatalf("nbdinfo --size with the secret: %s", out)
	}
	if out, _ := nbdTool(t, "nbdinfo", "--list", "nbd://"+s.addr); strings.Contains(out, cp.ID) {
		t.Fatalf("the export is listed without the secret:\n%s", out)
	}
	writeFile(t, secretFile, []byte("short\n"))
	e.mustFail("nbd", "serve", "--listen", "127.0.0.1:0", "--secret-file", secretFile)
}

// TestNBDTLS serves with --tls-required and reads with libnbd and qemu,
// both verifying a self-signed certificate.
func TestNBDTLS(t *testing.T) {
	requireNBDTool(t, "openssl", "openssl")
	requireNBDTool(t, "nbdinfo", "libnbd-bin")
	requireNBDTool(t, "qemu-img", "qemu-utils")
	e, _, hash, cp := nbdSetup(t)
	pki := filepath.Join(e.scratch, "pki")
	clientDir := filepath.Join(e.scratch, "client")
	for _, d := range []string{pki, clientDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := filepath.Join(pki, "cert.pem"), filepath.Join(pki, "key.pem")
	mustNBDTool(t, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
		"-addext", "subjectAltName=IP:127.0.0.1")
	copyFile(t, cert, filepath.Join(clientDir, "ca-cert.pem")) // what libnbd and qemu look for
	s := e.startNBD("", "--tls-cert", cert, "--tls-key", key, "--tls-required")
	port := s.addr[strings.LastIndexByte(s.addr, ':')+1:]

	tlsURI := "nbds://" + s.addr + "/" + cp.ID + "?tls-certificates=" + clientDir
	if out := mustNBDTool(t, "nbdinfo", "--size", tlsURI); strings.TrimSpace(out) != fmt.Sprint(nbdSize) {
		t.Fatalf("nbdinfo over TLS: %s", out)
	}
	if out, err := nbdTool(t, "nbdinfo", "--size", s.uri(cp.ID)); err == nil {
		t.Fatalf("served without TLS although it is required: %s", out)
	}
	out := filepath.Join(e.scratch, "tls.raw")
	mustNBDTool(t, "qemu-img", "convert",
		"--object", "tls-creds-x509,id=tls0,dir="+clientDir+",endpoint=client",
		"--image-opts", "driver=nbd,host=127.0.0.1,port="+port+",export="+cp.ID+",tls-creds=tls0",
		"-O", "raw", out)
	if got := fileHash(t, out); got != hash {
		t.Fatalf("qemu-img over TLS: sha256 %s, want %s", got, hash)
	}
}

// nbdIdleClient connects to addr, negotiates (fixed newstyle, NBD_OPT_GO
// for export) and returns the connection in transmission, sending
// nothing more: what a flood of idle clients does.
func nbdIdleClient(t *testing.T, addr, export string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fail := func(what string, err error) {
		t.Helper()
		t.Fatalf("idle client %s: %s: %v", c.LocalAddr(), what, err)
	}
	greeting := make([]byte, 18)
	if _, err := io.ReadFull(c, greeting); err != nil {
		fail("greeting", err)
	}
	msg := binary.BigEndian.AppendUint32(nil, 1|2) // FIXED_NEWSTYLE, NO_ZEROES
	msg = binary.BigEndian.AppendUint64(msg, 0x49484156454F5054)
	msg = binary.BigEndian.AppendUint32(msg, 7) // NBD_OPT_GO
	msg = binary.BigEndian.AppendUint32(msg, uint32(4+len(export)+2))
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(export)))
	msg = append(msg, export...)
	msg = binary.BigEndian.AppendUint16(msg, 0)
	if _, err := c.Write(msg); err != nil {
		fail("NBD_OPT_GO", err)
	}
	for {
		hdr := make([]byte, 20)
		if _, err := io.ReadFull(c, hdr); err != nil {
			fail("option reply", err)
		}
		typ, n := binary.BigEndian.Uint32(hdr[12:]), binary.BigEndian.Uint32(hdr[16:])
		data := make([]byte, n)
		if _, err := io.ReadFull(c, data); err != nil {
			fail("option reply data", err)
		}
		switch {
		case typ == 1: // NBD_REP_ACK: transmission starts
			c.SetDeadline(time.Time{})
			return c
		case typ&(1<<31) != 0:
			t.Fatalf("idle client: NBD_OPT_GO refused: %#x %q", typ, data)
		}
	}
}

// TestNBDIdleFlood: 256 clients that finish the handshake and sit idle do
// not lock out a real client (nbdinfo, nbdcopy); with --idle-timeout an
// idle client is closed.
func TestNBDIdleFlood(t *testing.T) {
	requireNBDTool(t, "nbdinfo", "libnbd-bin")
	requireNBDTool(t, "nbdcopy", "libnbd-bin")
	e, _, hash, cp := nbdSetup(t)
	s := e.startNBD("")
	idle := make([]net.Conn, 256)
	for i := range idle {
		idle[i] = nbdIdleClient(t, s.addr, cp.ID)
	}
	out := mustNBDTool(t, "nbdinfo", "--size", s.uri(cp.ID))
	if strings.TrimSpace(out) != fmt.Sprint(nbdSize) {
		t.Fatalf("nbdinfo --size behind 256 idle clients: %s", out)
	}
	copied := filepath.Join(e.scratch, "flood.raw")
	writeFile(t, copied, nil)
	mustNBDTool(t, "nbdcopy", s.uri(cp.ID), copied)
	if got := fileHash(t, copied); got != hash {
		t.Fatalf("nbdcopy behind 256 idle clients: sha256 %s, want %s", got, hash)
	}
	if !strings.Contains(s.stderrText(), "to make room for a new client") {
		t.Errorf("no eviction logged:\n%s", clip(s.stderrText()))
	}

	q := e.startNBD("", "--idle-timeout", "1s")
	c := nbdIdleClient(t, q.addr, cp.ID)
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle client with --idle-timeout 1s: read %d bytes, %v; want the server to close it", n, err)
	}
}
