package nbd

import (
	"encoding/binary"
	"net"
	"testing"
)

// TestMalformed sends broken messages: each must end in an error reply or
// a closed connection, never a panic or a hang (the client's deadline
// catches hangs).
func TestMalformed(t *testing.T) {
	_, addr := startServer(t, testCatalog(&memVolume{data: testImage()}), Options{MaxRequest: 64 << 10})

	halfClose := func(c *testClient) { c.c.(*net.TCPConn).CloseWrite() }
	inTransmission := func(c *testClient) {
		c.handshake(clientFlagFixedNewstyle)
		c.goExport("disk", false)
	}
	expectReply := func(typ uint32) func(c *testClient) {
		return func(c *testClient) {
			c.t.Helper()
			if r := c.reply(); r.typ != typ {
				c.t.Fatalf("reply %#x, want %#x", r.typ, typ)
			}
			// The negotiation goes on.
			c.option(optAbort, nil)
			if r := c.reply(); r.typ != repAck {
				c.t.Fatalf("abort after the error: %#x", r.typ)
			}
			c.expectClosed()
		}
	}
	closed := func(c *testClient) { c.expectClosed() }

	cases := []struct {
		name   string
		send   func(c *testClient)
		expect func(c *testClient)
	}{
		{"unknown client flags", func(c *testClient) { c.handshake(clientFlagFixedNewstyle | 1<<7) }, closed},
		{"not fixed newstyle", func(c *testClient) { c.handshake(0) }, closed},
		{"truncated client flags", func(c *testClient) {
			c.readFull(18)
			c.write([]byte{0, 0})
			halfClose(c)
		}, closed},
		{"bad option magic", func(c *testClient) {
			c.handshake(clientFlagFixedNewstyle)
			b := optionBytes(optList, nil)
			b[0] ^= 0xff
			c.write(b)
		}, closed},
		{"option length overflow", func(c *testClient) {
			c.handshake(clientFlagFixedNewstyle)
			b := optionBytes(optGo, nil)
			binary.BigEndian.PutUint32(b[12:], 0xffffffff)
			c.write(b)
		}, closed},
		{"truncated option", func(c *testClient) {
			c.handshake(clientFlagFixedNewstyle)
			b := optionBytes(optGo, infoData("disk"))
			c.write(b[:len(b)-3])
			halfClose(c)
		}, closed},
		{"truncated option header", func(c *testClient) {
			c.handshake(clientFlagFixedNewstyle)
			c.write(optionBytes(optGo, nil)[:9])
			halfClose(c)
		}, closed},
		{"unknown option", func(c *testClient) {
			c.handshake(clientFlagFixedNewstyle)
			c.option(0x7fff, []byte("data"))
		}, expectReply(repErrUnsup)},
		{"info name length overflow", func(c *testClient) {
			c.handshake(clientFlagFixedNewstyle)
			c.option(optGo, []byte{0xff, 0xff, 0xff, 0xff, 'd', 0, 0})
		}, expectReply(repErrInvalid)},
		{"info count mismatch", func(c *testClient) {
			c.handshake(clientFlagFixedNewstyle)
			c.option(optGo, append(nameData("disk"), 0, 5, 0, 1))
		}, expectReply(repErrInvalid)},
		{"meta query count overflow", func(c *testClient) {
			c.handshake(clientFlagFixedNewstyle)
			c.option(optListMetaContext, append(nameData("disk"), 0xff, 0xff, 0xff, 0xff))
		}, expectReply(repErrInvalid)},
		{"structured reply with data", func(c *testClient) {
			c.handshake(clientFlagFixedNewstyle)
			c.option(optStructuredReply, []byte{1})
		}, expectReply(repErrInvalid)},
		{"export name too long", func(c *testClient) {
			c.handshake(clientFlagFixedNewstyle)
			c.option(optExportName, make([]byte, maxString+1))
		}, closed},
		{"bad request magic", func(c *testClient) {
			inTransmission(c)
			b := requestBytes(0, cmdRead, 1, 0, 512)
			b[3] ^= 1
			c.write(b)
		}, closed},
		{"truncated request", func(c *testClient) {
			inTransmission(c)
			c.write(requestBytes(0, cmdRead, 1, 0, 512)[:20])
			halfClose(c)
		}, closed},
		{"truncated write payload", func(c *testClient) {
			inTransmission(c)
			c.request(0, cmdWrite, 1, 0, 4096, make([]byte, 100))
			halfClose(c)
		}, closed},
		{"huge write without payload", func(c *testClient) {
			inTransmission(c)
			c.request(0, cmdWrite, 1, 0, 0xffffffff, make([]byte, 1000))
			halfClose(c)
		}, closed},
		{"disconnect", func(c *testClient) {
			inTransmission(c)
			c.request(0, cmdDisc, 1, 0, 0, nil)
		}, closed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			tc.send(c)
			tc.expect(c)
		})
	}
}
