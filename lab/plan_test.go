package lab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/topology"
)

// fill sets every field of v that a scenario can set (not tagged yaml:"-")
// to a value of its own, different from the defaults, and returns their
// YAML paths.
func fill(t *testing.T, v reflect.Value, path string, n *int) []string {
	var paths []string
	for i := 0; i < v.NumField(); i++ {
		f, fv := v.Type().Field(i), v.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")
		if tag[0] == "-" || !f.IsExported() {
			continue
		}
		name := path + "." + tag[0]
		if len(tag) > 1 && tag[1] == "inline" {
			paths = append(paths, fill(t, fv, path, n)...)
			continue
		}
		*n++
		switch fv.Kind() {
		case reflect.String:
			fv.SetString(fmt.Sprintf("v%d", *n))
		case reflect.Bool:
			fv.SetBool(!fv.Bool())
		case reflect.Int, reflect.Int64:
			fv.SetInt(int64(1000 + *n)) // also a duration: 1000+n ns
		case reflect.Float64:
			fv.SetFloat(1 / float64(*n+1)) // in (0, 1): also a probability
		case reflect.Slice:
			s := reflect.MakeSlice(fv.Type(), 1, 1)
			el := s.Index(0)
			switch el.Kind() {
			case reflect.String:
				el.SetString(fmt.Sprintf("v%d", *n))
			case reflect.Int64:
				el.SetInt(int64(1000 + *n))
			case reflect.Struct:
				fill(t, el, name, n)
			default:
				t.Fatalf("%s: a slice of %s; teach fill", name, el.Kind())
			}
			fv.Set(s)
		case reflect.Struct:
			paths = append(paths, fill(t, fv, name, n)...)
			continue
		default:
			t.Fatalf("%s: a %s; teach fill", name, fv.Kind())
		}
		paths = append(paths, name)
	}
	return paths
}

// visible is v with the fields a scenario cannot set zeroed: what the lab
// fills in is not the scenario's to compare.
func visible(v reflect.Value) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")
		if tag[0] == "-" || !f.IsExported() {
			continue
		}
		switch {
		case f.Type.Kind() == reflect.Struct:
			out.Field(i).Set(visible(v.Field(i)))
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			s := reflect.MakeSlice(f.Type, v.Field(i).Len(), v.Field(i).Len())
			for j := range s.Len() {
				s.Index(j).Set(visible(v.Field(i).Index(j)))
			}
			out.Field(i).Set(s)
		default:
			out.Field(i).Set(v.Field(i))
		}
	}
	return out
}

// Every receiver and sender setting a scenario can give reaches the role
// as the role decodes its spec in its container: set each to a value of
// its own, translate (Plan.Spec), send as JSON, decode (role.DecodeSpec),
// and find each value again. The settings are one type shared by the
// scenario and the role, so a new setting is covered without a word here.
func TestScenarioSettingsReachTheRoles(t *testing.T) {
	sc := scenario.Default()
	n := 0
	paths := fill(t, reflect.ValueOf(&sc.Receiver.Config).Elem(), "receiver", &n)
	paths = append(paths, fill(t, reflect.ValueOf(&sc.Sender.Config).Elem(), "sender", &n)...)
	if len(paths) < 30 {
		t.Fatalf("filled %d settings: %v", len(paths), paths)
	}
	a := Addrs{topology.DNS: "10.0.0.2", topology.Receiver: "10.0.0.3", topology.Sender: "10.0.0.4"}
	p := NewPlan(sc)
	for _, r := range []topology.Role{topology.Receiver, topology.Sender} {
		b, err := json.Marshal(p.Spec(r, a))
		if err != nil {
			t.Fatal(err)
		}
		got, err := role.DecodeSpec(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var want, have reflect.Value
		if r == topology.Receiver {
			want, have = reflect.ValueOf(sc.Receiver.Config), reflect.ValueOf(*got.Receiver)
		} else {
			want, have = reflect.ValueOf(sc.Sender.Config), reflect.ValueOf(*got.Sender)
			for _, rt := range got.Sender.Routes {
				if rt.Relay != "10.0.0.3:25" {
					t.Errorf("route %s goes to %q, want the receiver", rt.Domain, rt.Relay)
				}
			}
		}
		if w, h := visible(want).Interface(), visible(have).Interface(); !reflect.DeepEqual(w, h) {
			t.Errorf("%s: the role got\n%+v\nthe scenario said\n%+v", r, h, w)
		}
	}
	// And each is a key a scenario file may write: the YAML of the filled
	// sections reads back the same, strictly.
	for _, sec := range []struct {
		name string
		v    any
	}{{"receiver", sc.Receiver}, {"sender", sc.Sender}} {
		b, err := yaml.Marshal(sec.v)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range paths {
			if key, ok := strings.CutPrefix(path, sec.name+"."); ok && !strings.Contains(key, ".") && !bytes.Contains(b, []byte(key+":")) {
				t.Errorf("%s: no key %q in its YAML:\n%s", sec.name, key, b)
			}
		}
	}
}
