// Command nbdlat measures NBD read latency for scripts/bench-nbd.sh. It is
// a minimal client (fixed newstyle, NBD_OPT_GO, simple replies) that
// issues one request at a time, so each figure is a full round trip.
//
// Latency mode reads -n blocks of -bs bytes at random aligned offsets,
// twice over the same offsets: the first pass ("cold") finds the server's
// caches empty when it has just started, the second ("warm") does not. It
// prints "cold_p50_us N", "cold_p99_us N", "warm_p50_us N", "warm_p99_us N".
//
// With -first it instead retries connecting and reading one block until
// that succeeds or -timeout passes, and prints "first_byte_ms N" measured
// from its own start; the script starts it right after the server.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

const (
	magicInit     = 0x4e42444d41474943
	magicOption   = 0x49484156454F5054
	magicOptReply = 0x3e889045565a9
	magicRequest  = 0x25609513
	magicReply    = 0x67446698
	optGo         = 7
	repAck        = 1
	repInfo       = 3
	cmdRead       = 0
	cmdDisc       = 2
)

type client struct {
	c  net.Conn
	br *bufio.Reader
}

// dial connects to addr: HOST:PORT, or unix:PATH.
func dial(addr string) (net.Conn, error) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		return net.DialTimeout("unix", p, 5*time.Second)
	}
	return net.DialTimeout("tcp", addr, 5*time.Second)
}

// connect negotiates export and returns the client and the export size.
func connect(addr, export string) (*client, int64, error) {
	c, err := dial(addr)
	if err != nil {
		return nil, 0, err
	}
	cl := &client{c: c, br: bufio.NewReaderSize(c, 1<<20)}
	size, err := cl.negotiate(export)
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	return cl, size, nil
}

func (cl *client) negotiate(export string) (int64, error) {
	var g [18]byte
	if _, err := io.ReadFull(cl.br, g[:]); err != nil {
		return 0, fmt.Errorf("greeting: %w", err)
	}
	if binary.BigEndian.Uint64(g[:]) != magicInit || binary.BigEndian.Uint64(g[8:]) != magicOption {
		return 0, errors.New("not a newstyle NBD server")
	}
	b := binary.BigEndian.AppendUint32(nil, 3) // fixed newstyle, no zeroes
	b = binary.BigEndian.AppendUint64(b, magicOption)
	b = binary.BigEndian.AppendUint32(b, optGo)
	b = binary.BigEndian.AppendUint32(b, uint32(4+len(export)+2))
	b = binary.BigEndian.AppendUint32(b, uint32(len(export)))
	b = append(b, export...)
	b = binary.BigEndian.AppendUint16(b, 0)
	if _, err := cl.c.Write(b); err != nil {
		return 0, err
	}
	size := int64(-1)
	for {
		var h [20]byte
		if _, err := io.ReadFull(cl.br, h[:]); err != nil {
			return 0, fmt.Errorf("option reply: %w", err)
		}
		typ, n := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
		if binary.BigEndian.Uint64(h[:]) != magicOptReply || n > 1<<20 {
			return 0, errors.New("bad option reply")
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(cl.br, p); err != nil {
			return 0, err
		}
		switch {
		case typ&(1<<31) != 0:
			return 0, fmt.Errorf("export %q refused (%#x): %s", export, typ, p)
		case typ == repInfo && len(p) >= 12 && binary.BigEndian.Uint16(p) == 0:
			size = int64(binary.BigEndian.Uint64(p[2:]))
		case typ == repAck:
			if size < 0 {
				return 0, errors.New("no export size")
			}
			return size, nil
		}
	}
}

// read reads len(buf) bytes at off with one request.
func (cl *client) read(buf []byte, off int64) error {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 28), magicRequest)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, cmdRead)
	b = binary.BigEndian.AppendUint64(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(off))
	b = binary.BigEndian.AppendUint32(b, uint32(len(buf)))
	if _, err := cl.c.Write(b); err != nil {
		return err
	}
	var h [16]byte
	if _, err := io.ReadFull(cl.br, h[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(h[:]) != magicReply {
		return errors.New("bad reply magic")
	}
	if e := binary.BigEndian.Uint32(h[4:]); e != 0 {
		return fmt.Errorf("read at %d: NBD error %d", off, e)
	}
	_, err := io.ReadFull(cl.br, buf)
	return err
}

func (cl *client) close() {
	b := binary.BigEndian.AppendUint32(nil, magicRequest)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, cmdDisc)
	cl.c.Write(append(b, make([]byte, 20)...))
	cl.c.Close()
}

func percentile(d []time.Duration, p float64) int64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))].Microseconds()
}

func main() {
	addr := flag.String("addr", "127.0.0.1:10809", "server: HOST:PORT or unix:PATH")
	export := flag.String("export", "", "export name")
	n := flag.Int("n", 1000, "reads per pass")
	bs := flag.Int("bs", 4096, "bytes per read")
	seed := flag.Uint64("seed", 1, "seed of the random offsets")
	first := flag.Bool("first", false, "measure the time until the first read succeeds")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long (-first)")
	flag.Parse()
	if err := run(*addr, *export, *n, *bs, *seed, *first, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "nbdlat:", err)
		os.Exit(1)
	}
}

func run(addr, export string, n, bs int, seed uint64, first bool, timeout time.Duration) error {
	start := time.Now()
	buf := make([]byte, bs)
	if first {
		for {
			cl, _, err := connect(addr, export)
			if err == nil {
				err = cl.read(buf, 0)
				cl.close()
				if err == nil {
					fmt.Printf("first_byte_ms %.1f\n", float64(time.Since(start).Microseconds())/1000)
					return nil
				}
			}
			if time.Since(start) > timeout {
				return fmt.Errorf("no byte within %v: %w", timeout, err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	cl, size, err := connect(addr, export)
	if err != nil {
		return err
	}
	defer cl.close()
	blocks := size / int64(bs)
	if blocks < 1 {
		return fmt.Errorf("export of %d bytes is smaller than one read", size)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = rng.Int64N(blocks) * int64(bs)
	}
	for _, pass := range []string{"cold", "warm"} {
		lat := make([]time.Duration, n)
		for i, off := range offs {
			t := time.Now()
			if err := cl.read(buf, off); err != nil {
				return err
			}
			lat[i] = time.Since(t)
		}
		fmt.Printf("%s_p50_us %d\n%s_p99_us %d\n", pass, percentile(lat, 0.50), pass, percentile(lat, 0.99))
	}
	return nil
}
