package nbd

import (
	"encoding/binary"
	"fmt"

	"github.com/pojntfx/go-nbd/pkg/protocol"
)

// Wire constants of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md).
// go-nbd's protocol package has the magics, the header layouts and a few
// values; everything it lacks is defined here.
const (
	magicInit        = protocol.NEGOTIATION_MAGIC_OLDSTYLE // "NBDMAGIC"
	magicOption      = protocol.NEGOTIATION_MAGIC_OPTION   // "IHAVEOPT"
	magicOptReply    = protocol.NEGOTIATION_MAGIC_REPLY
	magicRequest     = protocol.TRANSMISSION_MAGIC_REQUEST
	magicSimpleReply = protocol.TRANSMISSION_MAGIC_REPLY
	magicStructured  = uint32(0x668e33ef)

	// Handshake flags (server) and client flags.
	flagFixedNewstyle       = protocol.NEGOTIATION_HANDSHAKE_FLAG_FIXED_NEWSTYLE
	flagNoZeroes            = uint16(1 << 1)
	clientFlagFixedNewstyle = uint32(1 << 0)
	clientFlagNoZeroes      = uint32(1 << 1)

	// Options.
	optExportName      = uint32(1)
	optAbort           = protocol.NEGOTIATION_ID_OPTION_ABORT
	optList            = protocol.NEGOTIATION_ID_OPTION_LIST
	optStartTLS        = uint32(5)
	optInfo            = protocol.NEGOTIATION_ID_OPTION_INFO
	optGo              = protocol.NEGOTIATION_ID_OPTION_GO
	optStructuredReply = uint32(8)
	optListMetaContext = uint32(9)
	optSetMetaContext  = uint32(10)

	// Option replies.
	repAck         = protocol.NEGOTIATION_TYPE_REPLY_ACK
	repServer      = protocol.NEGOTIATION_TYPE_REPLY_SERVER
	repInfo        = protocol.NEGOTIATION_TYPE_REPLY_INFO
	repMetaContext = uint32(4)
	repErrUnsup    = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNSUPPORTED
	repErrPolicy   = uint32(1<<31 | 2)
	repErrInvalid  = uint32(1<<31 | 3)
	repErrTLSReqd  = uint32(1<<31 | 5)
	repErrUnknown  = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNKNOWN
	repErrShutdown = uint32(1<<31 | 7)

	// NBD_REP_INFO payload types.
	infoExport      = protocol.NEGOTIATION_TYPE_INFO_EXPORT
	infoName        = protocol.NEGOTIATION_TYPE_INFO_NAME
	infoDescription = protocol.NEGOTIATION_TYPE_INFO_DESCRIPTION
	infoBlockSize   = protocol.NEGOTIATION_TYPE_INFO_BLOCKSIZE

	// Transmission flags.
	tflagHasFlags        = protocol.NEGOTIATION_REPLY_FLAGS_HAS_FLAGS
	tflagReadOnly        = uint16(1 << 1)
	tflagSendFlush       = uint16(1 << 2)
	tflagSendFUA         = uint16(1 << 3)
	tflagSendTrim        = uint16(1 << 5)
	tflagSendWriteZeroes = uint16(1 << 6)
	tflagSendDF          = uint16(1 << 7)
	tflagCanMultiConn    = protocol.NEGOTIATION_REPLY_FLAGS_CAN_MULTI_CONN

	// Commands.
	cmdRead        = protocol.TRANSMISSION_TYPE_REQUEST_READ
	cmdWrite       = protocol.TRANSMISSION_TYPE_REQUEST_WRITE
	cmdDisc        = protocol.TRANSMISSION_TYPE_REQUEST_DISC
	cmdFlush       = uint16(3)
	cmdTrim        = uint16(4)
	cmdWriteZeroes = uint16(6)
	cmdBlockStatus = uint16(7)

	// Command flags.
	cmdFlagFUA    = uint16(1 << 0)
	cmdFlagNoHole = uint16(1 << 1)
	cmdFlagDF     = uint16(1 << 2)
	cmdFlagReqOne = uint16(1 << 3)

	// Structured reply chunks.
	replyFlagDone        = uint16(1 << 0)
	replyTypeNone        = uint16(0)
	replyTypeOffsetData  = uint16(1)
	replyTypeOffsetHole  = uint16(2)
	replyTypeBlockStatus = uint16(5)
	replyTypeError       = uint16(1<<15 | 1)
	replyTypeErrorOffset = uint16(1<<15 | 2)

	// Error values of replies.
	errPerm     = protocol.TRANSMISSION_ERROR_EPERM
	errIO       = uint32(5)
	errInval    = protocol.TRANSMISSION_ERROR_EINVAL
	errNoSpc    = uint32(28)
	errOverflow = uint32(75)
	errShutdown = uint32(108)

	// base:allocation states.
	stateHole = uint32(1 << 0)
	stateZero = uint32(1 << 1)

	metaBaseAllocation = "base:allocation"
	metaContextID      = uint32(1)

	// maxString bounds export names, queries and messages (proto.md).
	maxString = 4096
	// maxOptionLen bounds one option's data; a longer option closes the
	// connection (a name, info list or meta-context query is far smaller).
	maxOptionLen = 64 << 10

	requestHeaderLen = 28
	optionHeaderLen  = 16
)

// decodeRequest decodes a transmission request header.
func decodeRequest(b []byte) (protocol.TransmissionRequestHeader, error) {
	var h protocol.TransmissionRequestHeader
	if len(b) < requestHeaderLen {
		return h, fmt.Errorf("request header of %d bytes: %w", len(b), ErrProtocol)
	}
	h.RequestMagic = binary.BigEndian.Uint32(b[0:])
	h.CommandFlags = binary.BigEndian.Uint16(b[4:])
	h.Type = binary.BigEndian.Uint16(b[6:])
	h.Handle = binary.BigEndian.Uint64(b[8:])
	h.Offset = binary.BigEndian.Uint64(b[16:])
	h.Length = binary.BigEndian.Uint32(b[24:])
	if h.RequestMagic != magicRequest {
		return h, fmt.Errorf("request magic %#x: %w", h.RequestMagic, ErrProtocol)
	}
	return h, nil
}

// decodeOption decodes an option header.
func decodeOption(b []byte) (protocol.NegotiationOptionHeader, error) {
	var h protocol.NegotiationOptionHeader
	if len(b) < optionHeaderLen {
		return h, fmt.Errorf("option header of %d bytes: %w", len(b), ErrProtocol)
	}
	h.OptionMagic = binary.BigEndian.Uint64(b[0:])
	h.ID = binary.BigEndian.Uint32(b[8:])
	h.Length = binary.BigEndian.Uint32(b[12:])
	switch {
	case h.OptionMagic != magicOption:
		return h, fmt.Errorf("option magic %#x: %w", h.OptionMagic, ErrProtocol)
	case h.Length > maxOptionLen:
		return h, fmt.Errorf("option %d with %d bytes of data: %w", h.ID, h.Length, ErrProtocol)
	}
	return h, nil
}

// errInvalidOption marks option data that does not parse; it is answered
// with NBD_REP_ERR_INVALID and the negotiation goes on.
var errInvalidOption = fmt.Errorf("invalid option data: %w", ErrProtocol)

// readString takes a 32-bit length and that many bytes from b.
func readString(b []byte) (string, []byte, error) {
	if len(b) < 4 {
		return "", nil, errInvalidOption
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if n > maxString || uint64(n) > uint64(len(b)) {
		return "", nil, errInvalidOption
	}
	return string(b[:n]), b[n:], nil
}

// parseInfoRequest parses the data of NBD_OPT_INFO and NBD_OPT_GO: the
// export name and the information types the client asks for.
func parseInfoRequest(b []byte) (name string, infos []uint16, err error) {
	name, b, err = readString(b)
	if err != nil {
		return "", nil, err
	}
	if len(b) < 2 {
		return "", nil, errInvalidOption
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) != 2*n {
		return "", nil, errInvalidOption
	}
	infos = make([]uint16, n)
	for i := range infos {
		infos[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return name, infos, nil
}

// parseMetaRequest parses the data of NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT: an export name and a list of queries.
func parseMetaRequest(b []byte) (name string, queries []string, err error) {
	name, b, err = readString(b)
	if err != nil {
		return "", nil, err
	}
	if len(b) < 4 {
		return "", nil, errInvalidOption
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	// Each query takes at least its 4-byte length.
	if uint64(n)*4 > uint64(len(b)) {
		return "", nil, errInvalidOption
	}
	queries = make([]string, 0, n)
	for range n {
		var q string
		if q, b, err = readString(b); err != nil {
			return "", nil, err
		}
		queries = append(queries, q)
	}
	if len(b) != 0 {
		return "", nil, errInvalidOption
	}
	return name, queries, nil
}

// appendOptReply appends an option reply header and its payload.
func appendOptReply(dst []byte, opt, typ uint32, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, magicOptReply)
	dst = binary.BigEndian.AppendUint32(dst, opt)
	dst = binary.BigEndian.AppendUint32(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// appendSimpleReply appends a simple reply header.
func appendSimpleReply(dst []byte, errno uint32, handle uint64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, magicSimpleReply)
	dst = binary.BigEndian.AppendUint32(dst, errno)
	return binary.BigEndian.AppendUint64(dst, handle)
}

// appendChunk appends a structured reply chunk header announcing length
// bytes of payload.
func appendChunk(dst []byte, flags, typ uint16, handle uint64, length uint32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, magicStructured)
	dst = binary.BigEndian.AppendUint16(dst, flags)
	dst = binary.BigEndian.AppendUint16(dst, typ)
	dst = binary.BigEndian.AppendUint64(dst, handle)
	return binary.BigEndian.AppendUint32(dst, length)
}

// appendErrorChunk appends a complete NBD_REPLY_TYPE_ERROR chunk, or an
// NBD_REPLY_TYPE_ERROR_OFFSET chunk when withOffset, marked done.
func appendErrorChunk(dst []byte, handle uint64, errno uint32, msg string, withOffset bool, off uint64) []byte {
	if len(msg) > maxString {
		msg = msg[:maxString]
	}
	typ, n := replyTypeError, 6+len(msg)
	if withOffset {
		typ, n = replyTypeErrorOffset, n+8
	}
	dst = appendChunk(dst, replyFlagDone, typ, handle, uint32(n))
	dst = binary.BigEndian.AppendUint32(dst, errno)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	dst = append(dst, msg...)
	if withOffset {
		dst = binary.BigEndian.AppendUint64(dst, off)
	}
	return dst
}
