package events

import (
	"encoding/json"
	"strconv"
)

// appendJSON appends e as one JSON line, byte for byte what
// json.Marshal(e) and a newline give (FuzzAppendJSON holds it to that),
// without reflection and without making e escape to the heap: a role logs
// five events per message, and json.Marshal cost the receiver an Event on
// the heap and about a microsecond each. ok is false only where
// json.Marshal fails too (a time outside RFC 3339's years).
func appendJSON(b []byte, e *Event) (_ []byte, ok bool) {
	b = append(b, `{"time":"`...)
	b, err := e.Time.AppendText(b) // what Time.MarshalJSON writes, unquoted
	if err != nil {
		return b, false
	}
	b = append(b, `","role":`...)
	b = appendString(b, string(e.Role))
	b = append(b, `,"kind":`...)
	b = appendString(b, string(e.Kind))
	b = appendField(b, `,"conn":`, e.Conn)
	b = appendField(b, `,"host":`, e.Host)
	b = appendField(b, `,"queue_id":`, e.QueueID)
	b = appendField(b, `,"message_id":`, e.MessageID)
	b = appendField(b, `,"from":`, e.From)
	b = appendList(b, `,"rcpts":`, e.Rcpts)
	b = appendField(b, `,"check":`, e.Check)
	b = appendField(b, `,"name":`, e.Name)
	b = appendField(b, `,"qtype":`, e.QType)
	b = appendField(b, `,"result":`, e.Result)
	b = appendInt(b, `,"code":`, int64(e.Code))
	b = appendField(b, `,"enhanced":`, e.Enhanced)
	b = appendField(b, `,"error":`, e.Error)
	b = appendField(b, `,"reason":`, e.Reason)
	b = appendField(b, `,"path":`, e.Path)
	b = appendInt(b, `,"count":`, int64(e.Count))
	b = appendInt(b, `,"duration_ns":`, int64(e.Duration))
	b = appendInt(b, `,"seq":`, int64(e.Seq))
	b = appendInt(b, `,"size_in":`, int64(e.SizeIn))
	b = appendInt(b, `,"size_out":`, int64(e.SizeOut))
	b = appendInt(b, `,"queue_wait_ns":`, int64(e.QueueWait))
	b = appendInt(b, `,"on_line_ns":`, int64(e.OnLine))
	b = appendInt(b, `,"upstream_ns":`, int64(e.Upstream))
	b = appendField(b, `,"fault":`, e.FaultName)
	b = appendList(b, `,"via":`, e.Via)
	return append(b, "}\n"...), true
}

// appendField appends an omitempty string field: nothing when s is "".
func appendField(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

// appendList appends an omitempty []string field.
func appendList(b []byte, key string, list []string) []byte {
	if len(list) == 0 {
		return b
	}
	b = append(b, key...)
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendInt appends an omitempty integer field.
func appendInt(b []byte, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), v, 10)
}

// appendString appends s quoted as encoding/json quotes it, in one pass.
// ASCII is written here: printable bytes as they are, but for '"' and
// '\\' and the HTML-safe escapes of '<', '>' and '&' (every Message-ID
// has two). A string with a control byte or anything beyond ASCII is left
// to encoding/json whole (its short escapes, invalid UTF-8 replaced,
// U+2028 and U+2029 escaped).
func appendString(b []byte, s string) []byte {
	mark := len(b)
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plainByte[c] {
			continue
		}
		var esc string
		switch c {
		case '"':
			esc = `\"`
		case '\\':
			esc = `\\`
		case '<':
			esc = `\u003c`
		case '>':
			esc = `\u003e`
		case '&':
			esc = `\u0026`
		default:
			q, _ := json.Marshal(s) // a string always marshals
			return append(b[:mark], q...)
		}
		b = append(b, s[start:i]...)
		b = append(b, esc...)
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plainByte: the bytes a JSON string holds as they are (printable ASCII
// but for the five appendString escapes).
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// marshalLine is one event as its JSON line, by appendJSON, else (a time
// json.Marshal cannot write either) by json.Marshal itself.
func marshalLine(b []byte, e *Event) ([]byte, error) {
	if line, ok := appendJSON(b, e); ok {
		return line, nil
	}
	c := *e // only this rare path puts a copy on the heap
	line, err := json.Marshal(&c)
	if err != nil {
		return b, err
	}
	return append(append(b, line...), '\n'), nil
}
