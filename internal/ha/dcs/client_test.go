package dcs

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

func TestBasePath(t *testing.T) {
	for _, c := range []struct{ ns, scope, want string }{
		{"/service", "pg-test", "/service/pg-test"}, {"service/", "pg-test", "/service/pg-test"},
		{"/service//", "pg-test", "/service/pg-test"}, {"", "pg-test", "/pg-test"}, {"/", "pg-test", "/pg-test"},
		{"/a//b/", "pg-test", "/a/b/pg-test"},
	} {
		if got := BasePath(c.ns, c.scope); got != c.want {
			t.Errorf("BasePath(%q, %q) = %q, want %q", c.ns, c.scope, got, c.want)
		}
	}
}

// The session-less Client writes the keys patronictl writes, where Store reads them.
func TestClientWritesConfigAndFailover(t *testing.T) {
	e := testenv.StartEtcd(t)
	base := basePath(t)
	c, err := OpenClient(Config{Endpoints: []string{e.Endpoint()}, UseProxies: true, RetryTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)

	if ok, err := c.SetConfig(ctx, base, []byte(`{ "ttl": 30, "name": "a<b" }`), 0); err != nil || !ok {
		t.Fatalf("create config: %v %v", ok, err)
	}
	if ok, err := c.SetConfig(ctx, base, []byte(`{"ttl":31}`), 0); err != nil || ok {
		t.Fatalf("create over an existing config must fail its compare: %v %v", ok, err)
	}
	v, err := c.ReadView(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.SetConfig(ctx, base, []byte(`{"ttl":31}`), v.ConfigRev+1000); err != nil || ok {
		t.Fatalf("a stale revision must fail: %v %v", ok, err)
	}
	if ok, err := c.SetConfig(ctx, base, []byte(`{"ttl":31}`), v.ConfigRev); err != nil || !ok {
		t.Fatalf("update at the read revision: %v %v", ok, err)
	}
	if err := c.SetFailover(ctx, base, cluster.Failover{Leader: "pg<1>", Member: "pg-2"}); err != nil {
		t.Fatal(err)
	}
	raw := rawKeys(t, e.Client(), base)
	if got := string(raw[KeyConfig].value); got != `{"ttl":31}` {
		t.Errorf("config = %s", got)
	}
	if got := string(raw[KeyFailover].value); got != `{"leader":"pg<1>","member":"pg-2"}` {
		t.Errorf("failover = %s (Patroni's json.dumps does not escape <>)", got)
	}
	v, err = c.ReadView(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if v.Config == nil || v.Config.TTL != 31 || v.Failover == nil || v.Failover.Leader != "pg<1>" || v.Failover.Member != "pg-2" {
		t.Errorf("ReadView = config %+v failover %+v", v.Config, v.Failover)
	}
	if raw[KeyConfig].lease != 0 || raw[KeyFailover].lease != 0 {
		t.Error("the session-less client attached a lease")
	}
}
