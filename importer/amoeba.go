package importer

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Amoeba for MySQL: dbServers.xml lists servers (factoryConfig: address,
// port, account; abstract servers carry shared properties to children
// named by parent=) and virtual pools (poolNames, a server repeated for
// weight); amoeba.xml holds the listener, the application account, and
// the queryRouter's writePool and readPool.

type amoebaServer struct {
	node    *xnode
	parent  string
	virtual bool
	props   map[string]*xnode // factoryConfig and poolConfig properties
}

// ReadAmoeba adds Amoeba's dbServers.xml and amoeba.xml ("" if none).
func ReadAmoeba(p *Plan, dbServersPath, amoebaPath string) error {
	root, file, err := readSource(p, dbServersPath, "dbServers", "Amoeba's <amoeba:dbServers>", "Amoeba servers")
	if err != nil {
		return err
	}
	servers, order := amoebaServers(root)
	prop := func(name, key string) *xnode {
		for s, depth := servers[name], 0; s != nil && depth < 10; s, depth = servers[s.parent], depth+1 {
			if v, ok := s.props[key]; ok {
				return v
			}
		}
		return nil
	}
	var c *Cluster
	for _, name := range order {
		s := servers[name]
		if s.virtual {
			continue
		}
		ip, port := prop(name, "ipAddress"), prop(name, "port")
		if ip == nil {
			return s.node.errorf(file, "dbServer %s has no ipAddress (itself or from its parent)", name)
		}
		n := 3306
		if port != nil {
			if n, err = strconv.Atoi(port.text); err != nil {
				return port.errorf(file, "port %q is not a number", port.text)
			}
		}
		// Amoeba fronts one cluster: the MHA one holding its servers, if any.
		if oc, b := p.backend(ip.text, n); b != nil {
			b.From = append(b.From, s.node.at(file))
			b.Notes = append(b.Notes, "Amoeba's dbServer "+name)
			c = oc
		} else {
			if c == nil {
				c = p.newCluster("amoeba", file)
			}
			c.Backends = append(c.Backends, Backend{Name: name, Host: ip.text, Port: n, Weight: 1, From: []origin{s.node.at(file)}})
		}
		if u := prop(name, "user"); u != nil && !c.BackendUser.set() {
			c.BackendUser = value{u.text, u.at(file), "the account Amoeba used on the servers"}
			if pw := prop(name, "password"); pw != nil {
				c.BackendPassword = value{pw.text, pw.at(file), ""}
			}
		}
		if m := prop(name, "maxActive"); m != nil && !c.PoolMaxConnections.set() {
			c.PoolMaxConnections = value{m.text, m.at(file), "Amoeba's maxActive"}
		}
	}
	if c == nil {
		return root.errorf(file, "no dbServer with an address: nothing to import")
	}
	if amoebaPath == "" {
		return nil
	}
	return amoebaMain(p, c, amoebaPath, servers)
}

// amoebaServers reads the dbServer entries, by name, and the names of
// the concrete ones in file order.
func amoebaServers(root *xnode) (map[string]*amoebaServer, []string) {
	servers := map[string]*amoebaServer{}
	var order []string
	for _, s := range root.all("dbServer") {
		as := &amoebaServer{node: s, parent: s.attrs["parent"], virtual: s.attrs["virtual"] == "true", props: map[string]*xnode{}}
		for _, part := range []string{"factoryConfig", "poolConfig"} {
			if c := s.first(part); c != nil {
				for k, v := range c.properties() {
					as.props[k] = v
				}
			}
		}
		servers[s.attrs["name"]] = as
		if s.attrs["abstractive"] != "true" {
			order = append(order, s.attrs["name"])
		}
	}
	return servers, order
}

func amoebaMain(p *Plan, c *Cluster, path string, servers map[string]*amoebaServer) error {
	root, file, err := readSource(p, path, "configuration", "Amoeba's <amoeba:configuration>", "Amoeba")
	if err != nil {
		return err
	}
	if proxy := root.first("proxy"); proxy != nil {
		for _, svc := range proxy.all("service") {
			props := svc.properties()
			if props["port"] == nil {
				continue
			}
			host := "0.0.0.0"
			if ip := props["ipAddress"]; ip != nil && ip.text != "" {
				host = ip.text
			}
			p.Listen = value{net.JoinHostPort(host, props["port"].text), props["port"].at(file), "Amoeba's listener: applications keep their DSN"}
			if ap := props["authenticateProvider"]; ap != nil {
				if bean := ap.first("bean"); bean != nil {
					bp := bean.properties()
					if u, pw := bp["user"], bp["password"]; u != nil && pw != nil {
						p.Users = append(p.Users, User{Name: u.text, Password: pw.text, From: u.at(file)})
					}
				}
			}
		}
	}
	qr := root.first("queryRouter")
	if qr == nil {
		return nil
	}
	props := qr.properties()
	if wp := props["writePool"]; wp != nil {
		if s := servers[wp.text]; s != nil && s.virtual {
			p.skip(wp.at(file), "writePool="+wp.text, "a virtual pool for writes: Switchyard writes to one master, found from the servers' replication state")
		}
	}
	if rp := props["readPool"]; rp != nil {
		if s := servers[rp.text]; s != nil && s.virtual {
			if names := s.props["poolNames"]; names != nil {
				weights := map[string]int{}
				for _, n := range strings.Split(names.text, ",") {
					weights[strings.TrimSpace(n)]++
				}
				for i := range c.Backends {
					if w, ok := weights[c.Backends[i].Name]; ok {
						c.Backends[i].Weight = w
						c.Backends[i].Notes = append(c.Backends[i].Notes, fmt.Sprintf("weight %d: listed %d times in %s's poolNames", w, w, rp.text))
					}
				}
			}
		}
		c.ReadWriteSplit = value{"true", rp.at(file), "Amoeba's readPool: reads to the replicas"}
	}
	for _, k := range []string{"needParse", "sqlFunctionFile", "ruleLoader", "LRUMapSize", "defaultPool"} {
		if v := props[k]; v != nil {
			p.skip(v.at(file), k+"="+v.text, "Switchyard parses every statement and routes by the topology it sees")
		}
	}
	return nil
}
