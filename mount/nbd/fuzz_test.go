package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzRequestDecoder checks that the decoders of requests and option data
// never panic and that what they accept re-encodes to the same bytes.
func FuzzRequestDecoder(f *testing.F) {
	f.Add(requestBytes(0, cmdRead, 1, 4096, 512))
	f.Add(requestBytes(cmdFlagFUA, cmdWrite, 1<<63, 1<<40, 0xffffffff))
	f.Add(optionBytes(optGo, infoData("disk", infoName)))
	f.Add(infoData("disk", infoName, infoBlockSize))
	f.Add(metaData("disk", metaBaseAllocation, "base:"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeRequest(b); err == nil {
			if !bytes.Equal(requestBytes(h.CommandFlags, h.Type, h.Handle, h.Offset, h.Length), b[:requestHeaderLen]) {
				t.Fatalf("request %+v does not re-encode to %x", h, b[:requestHeaderLen])
			}
		}
		if h, err := decodeOption(b); err == nil {
			if h.OptionMagic != magicOption || h.Length > maxOptionLen {
				t.Fatalf("accepted option header %+v", h)
			}
		}
		if name, infos, err := parseInfoRequest(b); err == nil {
			if len(name) > maxString || !bytes.Equal(infoData(name, infos...), b) {
				t.Fatalf("info request %q %v does not re-encode to %x", name, infos, b)
			}
		}
		if name, queries, err := parseMetaRequest(b); err == nil {
			if !bytes.Equal(metaData(name, queries...), b) {
				t.Fatalf("meta request %q %q does not re-encode to %x", name, queries, b)
			}
		}
	})
}

// fuzzSession is a well-formed session on the writable export: handshake,
// structured replies, meta context, GO, a few requests, disconnect.
func fuzzSession() []byte {
	b := binary.BigEndian.AppendUint32(nil, clientFlagFixedNewstyle|clientFlagNoZeroes)
	b = append(b, optionBytes(optStructuredReply, nil)...)
	b = append(b, optionBytes(optSetMetaContext, metaData("rw", metaBaseAllocation))...)
	b = append(b, optionBytes(optGo, infoData("rw", infoName))...)
	b = append(b, requestBytes(0, cmdRead, 1, 0, 8192)...)
	b = append(b, requestBytes(cmdFlagFUA, cmdWrite, 2, 100, 4)...)
	b = append(b, "abcd"...)
	b = append(b, requestBytes(0, cmdBlockStatus, 3, 0, 65536)...)
	b = append(b, requestBytes(0, cmdWriteZeroes, 4, 4096, 4096)...)
	b = append(b, requestBytes(0, cmdFlush, 5, 0, 0)...)
	return append(b, requestBytes(0, cmdDisc, 6, 0, 0)...)
}

// FuzzServerConn feeds bytes to a server connection over net.Pipe as a
// client would. The connection must end, without a panic, once the client
// closes its side.
func FuzzServerConn(f *testing.F) {
	f.Add(fuzzSession())
	f.Add(append(binary.BigEndian.AppendUint32(nil, 1), optionBytes(optExportName, []byte("disk"))...))
	f.Add(append(binary.BigEndian.AppendUint32(nil, 1), optionBytes(optList, nil)...))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, in []byte) {
		cat := memCatalog{
			"disk": {Name: "disk", Device: VolumeDevice(&memVolume{data: make([]byte, 64<<10)})},
			"rw":   {Name: "rw", Device: &memDisk{memVolume: memVolume{data: make([]byte, 64<<10)}}},
		}
		s := NewServer(cat, Options{HandshakeTimeout: time.Second, MaxRequest: 128 << 10, Workers: 4})
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.serveConn(context.Background(), server)
		}()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			io.Copy(io.Discard, client)
		}()
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		client.Write(in)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the server connection did not end after the client closed")
		}
		<-drained
	})
}
