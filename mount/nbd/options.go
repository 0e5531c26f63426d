package nbd

import (
	"context"
	"encoding/binary"
)

// preferredBlockSize is advertised in NBD_INFO_BLOCK_SIZE. The minimum is
// 1: any offset and length work.
const preferredBlockSize = 4096

// info handles NBD_OPT_INFO and NBD_OPT_GO; GO returns the export on
// success and so ends the haggling.
func (s *session) info(ctx context.Context, opt uint32, data []byte) (*Export, error) {
	name, infos, err := parseInfoRequest(data)
	if err != nil {
		return nil, s.replyErr(opt, repErrInvalid, "malformed NBD_OPT_INFO/NBD_OPT_GO")
	}
	exp, err := s.lookup(ctx, opt, name)
	if exp == nil {
		return nil, err
	}
	if opt == optGo {
		s.selectExport(name)
	}
	var out []byte
	p := binary.BigEndian.AppendUint16(nil, infoExport)
	p = binary.BigEndian.AppendUint64(p, uint64(exp.Device.Size()))
	p = binary.BigEndian.AppendUint16(p, s.transmissionFlags(exp))
	out = appendOptReply(out, opt, repInfo, p)

	maxReq := uint32(s.c.s.o.MaxRequest)
	p = binary.BigEndian.AppendUint16(nil, infoBlockSize)
	p = binary.BigEndian.AppendUint32(p, 1)
	p = binary.BigEndian.AppendUint32(p, min(preferredBlockSize, maxReq))
	p = binary.BigEndian.AppendUint32(p, maxReq)
	out = appendOptReply(out, opt, repInfo, p)

	sent := map[uint16]bool{}
	for _, typ := range infos {
		if sent[typ] {
			continue
		}
		sent[typ] = true
		switch typ {
		case infoName:
			p = binary.BigEndian.AppendUint16(nil, infoName)
			out = appendOptReply(out, opt, repInfo, append(p, clip(exp.Name)...))
		case infoDescription:
			p = binary.BigEndian.AppendUint16(nil, infoDescription)
			out = appendOptReply(out, opt, repInfo, append(p, clip(exp.Description)...))
		}
	}
	out = appendOptReply(out, opt, repAck, nil)
	if _, err := s.w.Write(out); err != nil {
		return nil, errorf(err, "send export info")
	}
	if opt == optGo {
		return exp, nil
	}
	return nil, nil
}

// clip bounds a string sent to the client to the protocol's maximum.
func clip(s string) string {
	if len(s) > maxString {
		return s[:maxString]
	}
	return s
}

// list handles NBD_OPT_LIST.
func (s *session) list(ctx context.Context, data []byte) error {
	if len(data) != 0 {
		return s.replyErr(optList, repErrInvalid, "NBD_OPT_LIST takes no data")
	}
	exports, err := s.c.s.cat.List(ctx)
	if err != nil {
		s.c.s.o.Logf("nbd: list exports: %v", err)
		return s.replyErr(optList, repErrPolicy, "the exports cannot be listed")
	}
	var out []byte
	for _, e := range exports {
		name := clip(e.Name)
		p := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
		p = append(p, name...)
		p = append(p, clip(e.Description)...)
		out = appendOptReply(out, optList, repServer, p)
	}
	out = appendOptReply(out, optList, repAck, nil)
	if _, err := s.w.Write(out); err != nil {
		return errorf(err, "send export list")
	}
	return nil
}

// startTLS handles NBD_OPT_STARTTLS. Everything negotiated before TLS is
// forgotten: a man in the middle could have chosen it.
func (s *session) startTLS(ctx context.Context, data []byte) error {
	switch {
	case len(data) != 0:
		return s.replyErr(optStartTLS, repErrInvalid, "NBD_OPT_STARTTLS takes no data")
	case s.tls:
		return s.replyErr(optStartTLS, repErrInvalid, "TLS is already running")
	case s.c.s.o.TLS == nil:
		return s.replyErr(optStartTLS, repErrPolicy, "TLS is not configured on this server")
	}
	if err := s.reply(optStartTLS, repAck, nil); err != nil {
		return err
	}
	if err := s.c.upgradeTLS(ctx, s.br); err != nil {
		return err
	}
	s.w = s.c.stream()
	s.tls, s.structured, s.meta, s.metaName = true, false, false, ""
	return nil
}

// metaContext handles NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT. The one context is base:allocation; LIST also
// answers the query "base:" and an empty query list with it.
func (s *session) metaContext(ctx context.Context, opt uint32, data []byte) error {
	name, queries, err := parseMetaRequest(data)
	if err != nil {
		return s.replyErr(opt, repErrInvalid, "malformed meta context request")
	}
	if opt == optSetMetaContext && !s.structured {
		return s.replyErr(opt, repErrInvalid, "negotiate structured replies first")
	}
	exp, err := s.lookup(ctx, opt, name)
	if exp == nil {
		return err
	}
	match := opt == optListMetaContext && len(queries) == 0
	for _, q := range queries {
		if q == metaBaseAllocation || (opt == optListMetaContext && q == "base:") {
			match = true
		}
	}
	var out []byte
	if match {
		id := uint32(0) // reserved in LIST replies
		if opt == optSetMetaContext {
			id = metaContextID
		}
		p := binary.BigEndian.AppendUint32(nil, id)
		out = appendOptReply(out, opt, repMetaContext, append(p, metaBaseAllocation...))
	}
	out = appendOptReply(out, opt, repAck, nil)
	if _, err := s.w.Write(out); err != nil {
		return errorf(err, "send meta contexts")
	}
	if opt == optSetMetaContext {
		s.meta, s.metaName = match, name
	}
	return nil
}
