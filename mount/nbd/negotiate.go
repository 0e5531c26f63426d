package nbd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// session is the state option haggling builds up for one connection.
type session struct {
	c  *conn
	br *bufio.Reader
	w  io.Writer

	noZeroes   bool   // the client set NBD_FLAG_C_NO_ZEROES
	tls        bool   // STARTTLS completed
	structured bool   // NBD_OPT_STRUCTURED_REPLY acknowledged
	meta       bool   // base:allocation selected for metaName
	metaName   string // export the meta context was selected for
}

// negotiate runs the fixed newstyle handshake and option haggling. It
// returns the export chosen for transmission, or nil when the connection
// should simply end.
func (s *session) negotiate(ctx context.Context) (*Export, error) {
	if !s.c.beginOption() {
		return nil, nil
	}
	nc := s.c.stream()
	s.br, s.w = bufio.NewReaderSize(nc, 64<<10), nc

	greeting := binary.BigEndian.AppendUint64(nil, magicInit)
	greeting = binary.BigEndian.AppendUint64(greeting, magicOption)
	greeting = binary.BigEndian.AppendUint16(greeting, flagFixedNewstyle|flagNoZeroes)
	if _, err := s.w.Write(greeting); err != nil {
		return nil, errorf(err, "send greeting")
	}
	var cf [4]byte
	if _, err := io.ReadFull(s.br, cf[:]); err != nil {
		return nil, errorf(err, "read client flags")
	}
	flags := binary.BigEndian.Uint32(cf[:])
	if flags&^(clientFlagFixedNewstyle|clientFlagNoZeroes) != 0 || flags&clientFlagFixedNewstyle == 0 {
		return nil, errorf(ErrProtocol, "client flags %#x", flags)
	}
	s.noZeroes = flags&clientFlagNoZeroes != 0

	hdr := make([]byte, optionHeaderLen)
	for {
		if !s.c.beginOption() {
			return nil, nil
		}
		if _, err := io.ReadFull(s.br, hdr); err != nil {
			return nil, errorf(err, "read option")
		}
		h, err := decodeOption(hdr)
		if err != nil {
			return nil, err
		}
		data := make([]byte, h.Length)
		if _, err := io.ReadFull(s.br, data); err != nil {
			return nil, errorf(err, "read option %d data", h.ID)
		}
		exp, err := s.option(ctx, h.ID, data)
		if err != nil || exp != nil {
			return exp, err
		}
	}
}

// option handles one option; a non-nil export starts transmission.
func (s *session) option(ctx context.Context, id uint32, data []byte) (*Export, error) {
	if s.c.rejecting {
		return nil, s.refuse(id)
	}
	if s.c.s.o.TLSRequired && !s.tls && id != optStartTLS && id != optAbort {
		if id == optExportName {
			return nil, errorf(ErrProtocol, "NBD_OPT_EXPORT_NAME before the required TLS")
		}
		return nil, s.replyErr(id, repErrTLSReqd, "TLS is required: send NBD_OPT_STARTTLS first")
	}
	switch id {
	case optExportName:
		return s.exportName(ctx, data)
	case optAbort:
		_ = s.reply(id, repAck, nil)
		return nil, errAborted
	case optList:
		return nil, s.list(ctx, data)
	case optStartTLS:
		return nil, s.startTLS(ctx, data)
	case optInfo, optGo:
		return s.info(ctx, id, data)
	case optStructuredReply:
		if len(data) != 0 {
			return nil, s.replyErr(id, repErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data")
		}
		s.structured = true
		return nil, s.reply(id, repAck, nil)
	case optListMetaContext, optSetMetaContext:
		return nil, s.metaContext(ctx, id, data)
	}
	return nil, s.replyErr(id, repErrUnsup, fmt.Sprintf("option %d is not supported", id))
}

// refuse answers an option of a client admitted over MaxConns while
// every connection is busy: an error saying so, so that it tries later
// instead of waiting. NBD_OPT_EXPORT_NAME has no error reply: the
// connection just ends.
func (s *session) refuse(id uint32) error {
	switch id {
	case optAbort:
		_ = s.reply(id, repAck, nil)
		return errAborted
	case optExportName:
		return errBusy
	}
	msg := fmt.Sprintf("server busy: all %d connections are serving requests; try again later", s.c.s.o.MaxConns)
	return s.replyErr(id, repErrPolicy, msg)
}

// reply sends one option reply.
func (s *session) reply(opt, typ uint32, payload []byte) error {
	if _, err := s.w.Write(appendOptReply(nil, opt, typ, payload)); err != nil {
		return errorf(err, "send reply to option %d", opt)
	}
	return nil
}

// replyErr sends an error reply with a message for people.
func (s *session) replyErr(opt, typ uint32, msg string) error {
	return s.reply(opt, typ, []byte(msg))
}

// lookup resolves an export name, answering NBD_REP_ERR_UNKNOWN (and
// returning nil, nil) when that fails.
func (s *session) lookup(ctx context.Context, opt uint32, name string) (*Export, error) {
	exp, err := s.c.s.cat.Lookup(ctx, name)
	if err == nil {
		return exp, nil
	}
	msg := "no such export"
	if !errors.Is(err, ErrUnknownExport) {
		s.c.s.o.Logf("nbd: open export %q: %v", name, err)
		msg = "the export cannot be opened"
	}
	return nil, s.replyErr(opt, repErrUnknown, msg)
}

// transmissionFlags are the flags sent for exp on this session.
func (s *session) transmissionFlags(exp *Export) uint16 {
	f := tflagHasFlags | tflagCanMultiConn
	if _, ok := exp.Device.(WritableDevice); ok {
		f |= tflagSendFlush | tflagSendFUA | tflagSendTrim | tflagSendWriteZeroes
	} else {
		f |= tflagReadOnly
	}
	if s.structured {
		f |= tflagSendDF
	}
	return f
}

// selectExport forgets a meta context selected for another export.
func (s *session) selectExport(name string) {
	if s.metaName != name {
		s.meta = false
	}
}

// exportName handles NBD_OPT_EXPORT_NAME, which cannot fail politely: an
// unknown export ends the session.
func (s *session) exportName(ctx context.Context, data []byte) (*Export, error) {
	if len(data) > maxString {
		return nil, errorf(ErrProtocol, "export name of %d bytes", len(data))
	}
	name := string(data)
	exp, err := s.c.s.cat.Lookup(ctx, name)
	if err != nil {
		return nil, errorf(err, "export %q", name)
	}
	s.selectExport(name)
	b := binary.BigEndian.AppendUint64(nil, uint64(exp.Device.Size()))
	b = binary.BigEndian.AppendUint16(b, s.transmissionFlags(exp))
	if !s.noZeroes {
		b = append(b, make([]byte, 124)...)
	}
	if _, err := s.w.Write(b); err != nil {
		return nil, errorf(err, "send export info")
	}
	return exp, nil
}
