package vip

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	local := net.ParseIP("10.0.0.5")
	for _, tc := range []struct {
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{Config{Address: "10.10.10.2/24", Interface: "eth0"}, ""},
		{Config{Address: "fd00::2/64", LocalIP: local}, ""},
		{Config{Address: "::ffff:10.1.1.1/120", LocalIP: local}, "IPv4-mapped"},
		{Config{Address: "", Interface: "eth0"}, "required"},
		{Config{Address: "10.10.10.2", Interface: "eth0"}, "no prefix length"},
		{Config{Address: "10.10.10.300/24", Interface: "eth0"}, "not a CIDR"},
		{Config{Address: "10.10.10.2/33", Interface: "eth0"}, "not a CIDR"},
		{Config{Address: "127.0.0.1/24", Interface: "eth0"}, "not a unicast"},
		{Config{Address: "fe80::1/64", Interface: "eth0"}, "not a unicast"},
		{Config{Address: "10.10.10.2/24", Interface: "auto"}, "needs the node's local IP"},
		{Config{Address: "10.10.10.2/24"}, "needs the node's local IP"},
		{Config{Address: "10.10.10.2/24", Interface: "a-very-long-interface"}, "longer than 15"},
		{Config{Address: "10.10.10.2/24", Interface: "eth0", ARPCount: -1}, "negative"},
		{Config{Address: "10.10.10.2/24", Interface: "eth0", ARPInterval: -time.Second}, "negative"},
	} {
		cfg := tc.cfg
		p, err := cfg.validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one containing %q", tc.cfg, err, tc.want)
		case tc.want == "":
			if cfg.ARPCount != DefaultARPCount || cfg.ARPInterval != DefaultARPInterval || cfg.Logger == nil {
				t.Errorf("%+v: defaults not filled: %+v", tc.cfg, cfg)
			}
			if !p.IsValid() {
				t.Errorf("%+v: prefix %v", tc.cfg, p)
			}
		}
	}
}

func TestParseCapEff(t *testing.T) {
	status := "Name:\tpgnoded\nCapInh:\t0000000000000000\nCapPrm:\t0000000000003000\nCapEff:\t0000000000002000\n"
	eff, err := parseCapEff(bufio.NewScanner(strings.NewReader(status)))
	if err != nil || eff != 1<<capNetRaw {
		t.Fatalf("parseCapEff = %x, %v", eff, err)
	}
	if _, err := parseCapEff(bufio.NewScanner(strings.NewReader("Name:\tx\n"))); err == nil {
		t.Fatal("no CapEff line: want an error")
	}
	msg := (&MissingCapabilityError{Missing: []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}}).Error()
	if !strings.Contains(msg, "missing capability CAP_NET_ADMIN and CAP_NET_RAW") {
		t.Fatalf("message: %s", msg)
	}
}
