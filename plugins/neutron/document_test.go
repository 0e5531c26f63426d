package neutron

import (
	"encoding/json"
	"strings"
	"testing"
)

func validDocument() *Document {
	return &Document{Version: DocumentVersion, Network: Network{ID: "n", Name: "net"},
		Subnets:        []Subnet{{ID: "s", CIDR: "10.0.0.0/24", IPVersion: 4, GatewayIP: "10.0.0.1"}},
		Routers:        []Router{{ID: "r", Interfaces: []Interface{{PortID: "rp", SubnetID: "s", IPAddress: "10.0.0.1"}}}},
		Ports:          []Port{{ID: "p", FixedIPs: []FixedIP{{SubnetID: "s", IPAddress: "10.0.0.5"}}, SecurityGroups: []string{"g"}}},
		SecurityGroups: []SecurityGroup{{ID: "g", Name: "web", Rules: []Rule{{Direction: "ingress", EtherType: "IPv4", Protocol: "tcp", PortRangeMin: 22, PortRangeMax: 22}}}},
	}
}

func TestDecodeDocument(t *testing.T) {
	b, _ := json.Marshal(validDocument())
	if _, err := DecodeDocument(b); err != nil {
		t.Fatalf("valid document: %v", err)
	}
	for name, tc := range map[string]struct {
		mutate func(*Document)
		want   string
	}{
		"version":        {func(d *Document) { d.Version = 2 }, "version 2"},
		"no network":     {func(d *Document) { d.Network.ID = "" }, "no network ID"},
		"bad cidr":       {func(d *Document) { d.Subnets[0].CIDR = "10.0.0.0" }, "CIDR"},
		"ip version":     {func(d *Document) { d.Subnets[0].IPVersion = 6 }, "ip_version"},
		"router subnet":  {func(d *Document) { d.Routers[0].Interfaces[0].SubnetID = "x" }, "router r"},
		"port subnet":    {func(d *Document) { d.Ports[0].FixedIPs[0].SubnetID = "x" }, "port p"},
		"port group":     {func(d *Document) { d.Ports[0].SecurityGroups = []string{"x"} }, "security group \"x\""},
		"rule direction": {func(d *Document) { d.SecurityGroups[0].Rules[0].Direction = "in" }, "rule in/IPv4"},
		"port range":     {func(d *Document) { d.SecurityGroups[0].Rules[0].PortRangeMax = 70000 }, "port range"},
	} {
		t.Run(name, func(t *testing.T) {
			d := validDocument()
			tc.mutate(d)
			b, _ := json.Marshal(d)
			_, err := DecodeDocument(b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeDocument: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := DecodeDocument([]byte("{")); err == nil {
		t.Fatal("truncated JSON accepted")
	}
}

// FuzzDecodeDocument: whatever a checkpoint holds, decoding never
// panics, and an accepted document's references all resolve.
func FuzzDecodeDocument(f *testing.F) {
	b, _ := json.Marshal(validDocument())
	f.Add(b)
	f.Add([]byte(`{"version":1,"network":{"id":"x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDocument(b)
		if err != nil {
			return
		}
		subnets := map[string]bool{}
		for _, s := range d.Subnets {
			subnets[s.ID] = true
		}
		for _, p := range d.Ports {
			for _, ip := range p.FixedIPs {
				if !subnets[ip.SubnetID] {
					t.Fatalf("accepted a port on unknown subnet %q", ip.SubnetID)
				}
			}
		}
	})
}
