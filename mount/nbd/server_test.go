package nbd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

func TestNegotiation(t *testing.T) {
	_, addr := startServer(t, testCatalog(&memVolume{data: testImage()}), Options{})

	t.Run("list", func(t *testing.T) {
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle)
		c.option(optList, nil)
		rs := c.replies()
		if len(rs) != 2 || rs[0].typ != repServer || rs[1].typ != repAck {
			t.Fatalf("list replies %+v", rs)
		}
		n := binary.BigEndian.Uint32(rs[0].data)
		if name, desc := string(rs[0].data[4:4+n]), string(rs[0].data[4+n:]); name != "disk" || desc != "a test disk" {
			t.Fatalf("listed %q %q", name, desc)
		}
		c.option(optList, []byte{1})
		if r := c.reply(); r.typ != repErrInvalid {
			t.Fatalf("list with data: %#x", r.typ)
		}
		c.option(optAbort, nil)
		if r := c.reply(); r.typ != repAck {
			t.Fatalf("abort: %#x", r.typ)
		}
		c.expectClosed()
	})

	t.Run("info", func(t *testing.T) {
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle | clientFlagNoZeroes)
		c.option(optInfo, infoData("disk", infoName, infoDescription, infoBlockSize))
		got := map[uint16][]byte{}
		for _, r := range c.replies() {
			if r.typ == repInfo {
				got[binary.BigEndian.Uint16(r.data)] = r.data[2:]
			}
		}
		if size := binary.BigEndian.Uint64(got[infoExport]); size != 1<<20 {
			t.Errorf("size %d", size)
		}
		if f := binary.BigEndian.Uint16(got[infoExport][8:]); f&tflagReadOnly == 0 || f&tflagHasFlags == 0 || f&tflagSendDF != 0 {
			t.Errorf("flags %#x", f)
		}
		if string(got[infoName]) != "disk" || string(got[infoDescription]) != "a test disk" {
			t.Errorf("name %q description %q", got[infoName], got[infoDescription])
		}
		if bs := got[infoBlockSize]; len(bs) != 12 || binary.BigEndian.Uint32(bs[8:]) != defaultMaxRequest {
			t.Errorf("block size %x", bs)
		}
		c.option(optInfo, infoData("nope"))
		if r := c.reply(); r.typ != repErrUnknown {
			t.Errorf("unknown export: %#x", r.typ)
		}
		c.option(optInfo, []byte{0, 0, 0, 9, 'x'})
		if r := c.reply(); r.typ != repErrInvalid {
			t.Errorf("malformed info: %#x", r.typ)
		}
		c.option(99, []byte("whatever"))
		if r := c.reply(); r.typ != repErrUnsup {
			t.Errorf("unknown option: %#x", r.typ)
		}
		c.option(optStartTLS, nil)
		if r := c.reply(); r.typ != repErrPolicy {
			t.Errorf("STARTTLS without TLS: %#x", r.typ)
		}
		c.option(optSetMetaContext, metaData("disk", metaBaseAllocation))
		if r := c.reply(); r.typ != repErrInvalid {
			t.Errorf("meta context before structured replies: %#x", r.typ)
		}
		c.option(optListMetaContext, metaData("disk"))
		if rs := c.replies(); len(rs) != 2 || rs[0].typ != repMetaContext || string(rs[0].data[4:]) != metaBaseAllocation {
			t.Errorf("list meta contexts: %+v", rs)
		}
		// Still usable after all the errors.
		if size, _ := c.goExport("disk", true); size != 1<<20 {
			t.Errorf("size %d", size)
		}
	})

	t.Run("export name", func(t *testing.T) {
		for _, noZeroes := range []bool{false, true} {
			c := dial(t, addr)
			flags := clientFlagFixedNewstyle
			if noZeroes {
				flags |= clientFlagNoZeroes
			}
			c.handshake(flags)
			c.option(optExportName, []byte("disk"))
			b := c.readFull(10)
			if binary.BigEndian.Uint64(b) != 1<<20 {
				t.Fatalf("size %x", b)
			}
			if !noZeroes && !bytes.Equal(c.readFull(124), make([]byte, 124)) {
				t.Fatal("reserved bytes are not zero")
			}
			c.request(0, cmdRead, 7, 4096, 4096, nil)
			if k := c.next(map[uint64]int{7: 4096}); k.errno != 0 || !bytes.Equal(k.payload, testImage()[4096:8192]) {
				t.Fatalf("read after EXPORT_NAME: %+v", k.errno)
			}
			c.request(0, cmdDisc, 8, 0, 0, nil)
			c.expectClosed()
		}
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle)
		c.option(optExportName, []byte("nope"))
		c.expectClosed()
	})
}

func TestRead(t *testing.T) {
	img := testImage()
	_, addr := startServer(t, testCatalog(&memVolume{data: img}), Options{})

	t.Run("simple", func(t *testing.T) {
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle)
		c.goExport("disk", false)
		lens := map[uint64]int{}
		// Pipelined: every request before any reply.
		for i := range 64 {
			off, n := uint64(i*15000), uint32(1000+i*300)
			lens[uint64(i)] = int(n)
			c.request(0, cmdRead, uint64(i), off, n, nil)
		}
		for range 64 {
			k := c.next(lens)
			off := int(k.handle) * 15000
			if k.errno != 0 || !bytes.Equal(k.payload, img[off:off+lens[k.handle]]) {
				t.Fatalf("read %d: errno %d", k.handle, k.errno)
			}
		}
	})

	t.Run("structured", func(t *testing.T) {
		c := dial(t, addr)
		c.handshake(clientFlagFixedNewstyle)
		_, flags := c.goExport("disk", true)
		if flags&tflagSendDF == 0 {
			t.Fatalf("flags %#x lack SEND_DF", flags)
		}
		c.request(0, cmdRead, 1, 200<<10, 200<<10, nil)
		data, types, errno := c.readStructured(1, 200<<10, 200<<10)
		if errno != 0 || !bytes.Equal(data, img[200<<10:400<<10]) {
			t.Fatalf("structured read: errno %d", errno)
		}
		if fmt.Sprint(types) != fmt.Sprint([]uint16{replyTypeOffsetData, replyTypeOffsetHole, replyTypeOffsetData}) {
			t.Fatalf("chunk types %v, want data, hole, data", types)
		}
		c.request(cmdFlagDF, cmdRead, 2, 200<<10, 200<<10, nil)
		data, types, errno = c.readStructured(2, 200<<10, 200<<10)
		if errno != 0 || len(types) != 1 || !bytes.Equal(data, img[200<<10:400<<10]) {
			t.Fatalf("DF read: errno %d types %v", errno, types)
		}
		c.request(0, cmdRead, 3, 0, 0, nil)
		if k := c.next(nil); k.typ != replyTypeNone || k.flags&replyFlagDone == 0 {
			t.Fatalf("empty read: %+v", k)
		}
	})
}

func TestBlockStatus(t *testing.T) {
	_, addr := startServer(t, testCatalog(&memVolume{data: testImage()}), Options{})
	c := dial(t, addr)
	c.handshake(clientFlagFixedNewstyle)
	c.goExport("disk", true)

	status := func(handle uint64, flags uint16, off uint64, n uint32) [][2]uint32 {
		t.Helper()
		c.request(flags, cmdBlockStatus, handle, off, n, nil)
		k := c.next(nil)
		if k.typ != replyTypeBlockStatus || k.flags&replyFlagDone == 0 || binary.BigEndian.Uint32(k.payload) != metaContextID {
			t.Fatalf("block status reply %+v", k)
		}
		var out [][2]uint32
		for p := k.payload[4:]; len(p) >= 8; p = p[8:] {
			out = append(out, [2]uint32{binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])})
		}
		return out
	}
	hz := stateHole | stateZero
	want := [][2]uint32{{256 << 10, 0}, {64 << 10, hz}, {448 << 10, 0}, {256 << 10, hz}}
	if got := status(1, 0, 0, 1<<20); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("block status %v, want %v", got, want)
	}
	if got := status(2, cmdFlagReqOne, 260<<10, 100<<10); fmt.Sprint(got) != fmt.Sprint([][2]uint32{{60 << 10, hz}}) {
		t.Errorf("REQ_ONE block status %v", got)
	}
	for i, r := range []struct{ off, n uint64 }{{0, 0}, {1 << 20, 1}, {1<<20 - 1, 2}} {
		c.request(0, cmdBlockStatus, uint64(10+i), r.off, uint32(r.n), nil)
		if k := c.next(nil); k.typ != replyTypeError || binary.BigEndian.Uint32(k.payload) != errInval {
			t.Errorf("block status %+v: reply %+v", r, k)
		}
	}
}

func TestRequestErrors(t *testing.T) {
	v := &memVolume{data: testImage(), failAt: 600 << 10}
	_, addr := startServer(t, testCatalog(v), Options{MaxRequest: 256 << 10})

	for _, structured := range []bool{false, true} {
		t.Run(fmt.Sprintf("structured=%v", structured), func(t *testing.T) {
			c := dial(t, addr)
			c.handshake(clientFlagFixedNewstyle)
			c.goExport("disk", structured)
			cases := []struct {
				name        string
				flags, typ  uint16
				off         uint64
				n           uint32
				payload     []byte
				want        uint32
				errorOffset bool
			}{
				{"read past end", 0, cmdRead, 1<<20 - 10, 11, nil, errInval, false},
				{"read offset overflow", 0, cmdRead, 1<<64 - 1, 2, nil, errInval, false},
				{"read too large", 0, cmdRead, 0, 512 << 10, nil, errOverflow, false},
				{"read failure", 0, cmdRead, 596 << 10, 8192, nil, errIO, true},
				{"unknown command", 0, 42, 0, 0, nil, errInval, false},
				{"unknown flag", 1 << 9, cmdRead, 0, 512, nil, errInval, false},
				{"write read-only", 0, cmdWrite, 0, 4, []byte("abcd"), errPerm, false},
				{"write too large", 0, cmdWrite, 0, 300 << 10, make([]byte, 300<<10), errOverflow, false},
				{"trim read-only", 0, cmdTrim, 0, 4096, nil, errPerm, false},
				{"zeroes read-only", 0, cmdWriteZeroes, 0, 4096, nil, errPerm, false},
				{"fua read-only", cmdFlagFUA, cmdRead, 0, 512, nil, errInval, false},
			}
			for i, tc := range cases {
				h := uint64(100 + i)
				c.request(tc.flags, tc.typ, h, tc.off, tc.n, tc.payload)
				k := c.next(nil)
				got := k.errno
				if !k.simple {
					got = binary.BigEndian.Uint32(k.payload)
					if tc.errorOffset && k.typ != replyTypeErrorOffset || !tc.errorOffset && k.typ != replyTypeError {
						t.Errorf("%s: chunk type %#x", tc.name, k.typ)
					}
				}
				if k.handle != h || got != tc.want || k.simple == structured {
					t.Errorf("%s: reply %+v (errno %d), want errno %d", tc.name, k, got, tc.want)
				}
			}
			// The stream is still in step: a good read works.
			c.request(0, cmdRead, 1, 0, 4096, nil)
			if structured {
				if data, _, errno := c.readStructured(1, 0, 4096); errno != 0 || !bytes.Equal(data, v.data[:4096]) {
					t.Fatalf("read after errors: errno %d", errno)
				}
			} else if k := c.next(map[uint64]int{1: 4096}); k.errno != 0 || !bytes.Equal(k.payload, v.data[:4096]) {
				t.Fatalf("read after errors: %+v", k.errno)
			}
			c.request(0, cmdFlush, 2, 0, 0, nil)
			if k := c.next(nil); !k.simple || k.errno != 0 {
				t.Fatalf("flush on a read-only export: %+v", k)
			}
		})
	}
}
