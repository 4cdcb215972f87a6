package config

import (
	"slices"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// The key table (keys.go) decides what happens to every written key: the
// loader, --validate-config, PATCH/PUT /config and the HA loop's view of
// etcd's /config all go through walkKeys, so a refusal is lifted in one place.

// keyIssue is one refused or warned key found by walkKeys.
type keyIssue struct {
	path  string
	class Class
	msg   string
}

// verdict applies a row to a written value.
func verdict(r *KeyRule, v any, x keyContext) (Class, string) {
	if r.Decide != nil {
		return r.Decide(v, x)
	}
	if r.Class == Honoured {
		return 0, ""
	}
	msg := r.Note
	if r.When != nil {
		m, hit := r.When(v, x)
		if !hit {
			return 0, ""
		}
		if m != "" {
			msg = m
		}
	}
	return r.Class, msg
}

// walkKeys visits every key of m (sorted) below prefix and reports the rows
// that refuse or warn. wheres are the documents whose rows apply.
func walkKeys(m map[string]any, prefix string, wheres []Where, x keyContext, report func(keyIssue)) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := m[k]
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		if slices.Contains(wheres, Local) && path == "bootstrap.dcs" {
			if dcs, ok := v.(map[string]any); ok {
				dx := keyContext{local: x.local, dcs: dcs, compat4: x.compat4}
				walkKeys(dcs, "", []Where{Dynamic}, dx, func(i keyIssue) {
					i.path = "bootstrap.dcs." + i.path
					report(i)
				})
			}
			continue
		}
		var r *KeyRule
		for _, w := range wheres {
			if r = Rule(w, path); r != nil {
				break
			}
		}
		cx := x
		cx.key, cx.parent = k, m
		if r != nil {
			if class, msg := verdict(r, v, cx); class != 0 {
				report(keyIssue{path: path, class: class, msg: msg})
			}
			if r.Subtree {
				continue
			}
		}
		if sub, ok := v.(map[string]any); ok {
			walkKeys(sub, path, wheres, x, report)
		}
	}
}

// hasRule reports whether the table has a row for a local key path (such keys
// are not "unknown": the table says what happens to them).
func hasRule(path string) bool {
	return Rule(Local, path) != nil || Rule(Own, path) != nil
}

// checkKeys applies the table to the local configuration tree.
func checkKeys(c *Config, root map[string]any, p *problems) {
	x := keyContext{local: root, compat4: c.PGNoded.Compat == cluster.Compat4} // normalized by checkPGNoded
	walkKeys(root, "", []Where{Local, Own}, x, func(i keyIssue) {
		switch i.class {
		case Refused:
			c.errorf(p, i.path, "%s", i.msg)
		case Warned:
			p.warnf(c.where(i.path), i.path, "%s", i.msg)
		}
	})
}

// CheckDynamic applies the key table to a dynamic configuration document
// (etcd's /config, a PATCH/PUT /config body after merging) under compat
// 3.0.2: the keys pgnoded refuses and those it warns about, each with the
// reason, in key order.
func CheckDynamic(doc map[string]any) (refused, warned []cluster.KeyIssue) {
	return CheckDynamicFor(doc, cluster.Compat302)
}

// CheckDynamicFor is CheckDynamic for a node running with compat.
func CheckDynamicFor(doc map[string]any, compat cluster.Compat) (refused, warned []cluster.KeyIssue) {
	x := keyContext{dcs: doc, compat4: compat == cluster.Compat4}
	walkKeys(doc, "", []Where{Dynamic}, x, func(i keyIssue) {
		ki := cluster.KeyIssue{Key: i.path, Msg: i.msg}
		if i.class == Refused {
			refused = append(refused, ki)
		} else {
			warned = append(warned, ki)
		}
	})
	return refused, warned
}

// DynamicChecks are CheckDynamicFor's refusals alone (the HA loop's hook and
// pgnodectl edit-config) and its warnings alone (the HA loop logs them) for a
// node running with compat.
func DynamicChecks(compat cluster.Compat) (refused, warned func(map[string]any) []cluster.KeyIssue) {
	return func(doc map[string]any) []cluster.KeyIssue {
			r, _ := CheckDynamicFor(doc, compat)
			return r
		}, func(doc map[string]any) []cluster.KeyIssue {
			_, w := CheckDynamicFor(doc, compat)
			return w
		}
}

// Counts returns how many rows of the table (and of the environment table)
// are in each class.
func Counts() map[Class]int {
	out := map[Class]int{}
	for _, r := range keyTable {
		out[r.Class]++
	}
	for _, e := range EnvTable() {
		out[e.Class]++
	}
	return out
}
