package importer

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Mycat 1.6: schema.xml maps logical schemas to dataNodes (a database on
// a dataHost); a dataHost is a master (writeHost) with its replicas
// (readHost) and standby writeHosts. server.xml holds the listener and
// the application users.

// ReadMycat adds Mycat's schema.xml and server.xml ("" if none) to the
// plan: each dataHost (only dataHost when given) is a cluster, and each
// schema whose dataNode is a database of the same name maps to it.
func ReadMycat(p *Plan, schemaPath, serverPath, dataHost string) error {
	root, file, err := readSource(p, schemaPath, "schema", "Mycat's <mycat:schema>", "Mycat schema")
	if err != nil {
		return err
	}
	hosts, err := pickDataHosts(root, file, dataHost)
	if err != nil {
		return err
	}
	clusters := map[string]*Cluster{} // dataHost name → cluster
	for _, dh := range hosts {
		c, err := mycatDataHost(p, dh, file)
		if err != nil {
			return err
		}
		clusters[dh.attrs["name"]] = c
	}
	mycatSchemas(p, root, file, clusters)
	if serverPath != "" {
		return mycatServer(p, serverPath)
	}
	return nil
}

// pickDataHosts returns every dataHost, or only the one named want.
func pickDataHosts(root *xnode, file, want string) ([]*xnode, error) {
	hosts := root.all("dataHost")
	if len(hosts) == 0 {
		return nil, root.errorf(file, "no <dataHost>: nothing to import")
	}
	if want == "" {
		return hosts, nil
	}
	var names []string
	for _, h := range hosts {
		if h.attrs["name"] == want {
			return []*xnode{h}, nil
		}
		names = append(names, h.attrs["name"])
	}
	return nil, root.errorf(file, "no dataHost %q (there are: %s)", want, strings.Join(names, ", "))
}

// mycatSchemas maps each logical schema to its dataHost's cluster, and
// notes what Mycat's logical layer did that Switchyard does not: renamed
// schemas, schemas spread over dataHosts, sharded tables.
func mycatSchemas(p *Plan, root *xnode, file string, clusters map[string]*Cluster) {
	nodes := map[string]*xnode{}
	for _, dn := range root.all("dataNode") {
		nodes[dn.attrs["name"]] = dn
	}
	for _, s := range root.all("schema") {
		name := s.attrs["name"]
		var on []string // the clusters of the schema's dataNodes
		for _, node := range strings.Split(s.attrs["dataNode"], ",") {
			dn := nodes[strings.TrimSpace(node)]
			if dn == nil {
				continue
			}
			c := clusters[dn.attrs["dataHost"]]
			switch {
			case c == nil:
				p.skip(s.at(file), fmt.Sprintf("schema %s on dataHost %s", name, dn.attrs["dataHost"]), "that dataHost was not imported (--mycat-datahost)")
			case !strings.EqualFold(dn.attrs["database"], name):
				p.skip(s.at(file), fmt.Sprintf("schema %s → database %s", name, dn.attrs["database"]),
					"Switchyard does not rename schemas: applications must USE "+dn.attrs["database"]+" (or rename the database)")
			case !slices.Contains(on, c.Name):
				on = append(on, c.Name)
			}
		}
		switch {
		case len(on) == 1:
			p.Schemas = append(p.Schemas, Schema{Name: name, Cluster: on[0], From: s.at(file)})
		case len(on) > 1:
			p.skip(s.at(file), fmt.Sprintf("schema %s over dataHosts of clusters %s", name, strings.Join(on, ", ")),
				"a schema lives on one cluster (spreading one over several is sharding): map it in schemas: by hand")
		}
		for _, t := range s.all("table") {
			if t.attrs["rule"] != "" || strings.Contains(t.attrs["dataNode"], ",") || strings.Contains(t.attrs["dataNode"], "$") {
				p.skip(t.at(file), fmt.Sprintf("table %s (rule %q over %s)", t.attrs["name"], t.attrs["rule"], t.attrs["dataNode"]),
					"sharding is not a Switchyard feature: the table is read and written where it is, on one cluster")
			}
		}
		if v := s.attrs["sqlMaxLimit"]; v != "" {
			p.skip(s.at(file), fmt.Sprintf("schema %s sqlMaxLimit=%s", name, v), "Switchyard never adds a LIMIT to a statement")
		}
	}
}

// clusterFor is the cluster a dataHost becomes: the one already holding
// any of its servers (an MHA config of the same servers), renamed after
// the dataHost that schemas refer to, else a new one.
func clusterFor(p *Plan, dh *xnode) *Cluster {
	name := dh.attrs["name"]
	for _, w := range dh.all("writeHost") {
		for _, h := range append([]*xnode{w}, w.all("readHost")...) {
			host, port, err := mycatURL(h.attrs["url"])
			if err != nil {
				continue
			}
			if c, _ := p.backend(host, port); c != nil {
				c.Name = name
				c.From = append(c.From, "dataHost "+name)
				return c
			}
		}
	}
	return p.newCluster(name, "dataHost "+name)
}

// mycatDataHost reads one dataHost into its cluster.
func mycatDataHost(p *Plan, dh *xnode, file string) (*Cluster, error) {
	a := dh.attrs
	if t := a["dbType"]; t != "" && !strings.EqualFold(t, "mysql") {
		return nil, dh.errorf(file, "dataHost %s is dbType=%s: Switchyard fronts MySQL and MariaDB only", a["name"], t)
	}
	c := clusterFor(p, dh)
	if v, ok := a["maxCon"]; ok {
		c.PoolMaxConnections = value{v, dh.at(file), "Mycat's maxCon: connections to each server"}
	}
	if v, ok := a["minCon"]; ok {
		p.skip(dh.at(file), "minCon="+v, "pools open connections on demand and keep pool.max_idle of them")
	}
	switch a["balance"] {
	case "0":
		c.ReadWriteSplit = value{"false", dh.at(file), "balance=0: every statement to the writeHost"}
	case "1", "3", "":
		c.ReadWriteSplit = value{"true", dh.at(file), "balance=" + a["balance"] + ": reads to the replicas"}
	case "2":
		c.ReadWriteSplit = value{"true", dh.at(file), "balance=2 spread reads over the writeHost too; Switchyard reads from the master only when no replica is usable"}
	default:
		return nil, dh.errorf(file, "balance=%q: Mycat knows 0, 1, 2 and 3", a["balance"])
	}
	switch a["writeType"] {
	case "0", "":
	case "1":
		p.skip(dh.at(file), "writeType=1", "writes never go to several masters: one master at a time")
	default:
		return nil, dh.errorf(file, "writeType=%q: Mycat knows 0 and 1", a["writeType"])
	}
	switch a["switchType"] {
	case "-1":
		c.FailoverEnabled = value{"false", dh.at(file), "switchType=-1: no automatic switch"}
	case "1", "2", "":
		if !c.FailoverEnabled.set() {
			c.FailoverEnabled = value{"true", dh.at(file), "switchType=" + a["switchType"] + ": automatic switch"}
		}
	case "3":
		return nil, dh.errorf(file, "switchType=3 is for Galera clusters: Switchyard fronts master–replica replication")
	default:
		return nil, dh.errorf(file, "switchType=%q: Mycat knows -1, 1, 2 and 3", a["switchType"])
	}
	if v, ok := a["slaveThreshold"]; ok {
		if _, err := strconv.Atoi(v); err != nil {
			return nil, dh.errorf(file, "slaveThreshold=%q is not a number of seconds", v)
		}
		c.MaxReplicaLag = value{v + "s", dh.at(file), "Mycat's slaveThreshold: a replica further behind takes no reads"}
	}
	if hb := dh.first("heartbeat"); hb != nil {
		p.skip(hb.at(file), "heartbeat "+hb.text, "the monitor checks each server's replication state every monitor.interval")
	}
	if err := mycatHosts(p, c, dh, file); err != nil {
		return nil, err
	}
	return c, nil
}

// mycatHosts reads a dataHost's writeHosts and their readHosts into c.
func mycatHosts(p *Plan, c *Cluster, dh *xnode, file string) error {
	a := dh.attrs
	writeHosts := dh.all("writeHost")
	if len(writeHosts) == 0 {
		return dh.errorf(file, "dataHost %s has no <writeHost>", a["name"])
	}
	for i, w := range writeHosts {
		if i == 0 {
			c.BackendUser = value{w.attrs["user"], w.at(file), "the account Mycat used on the servers"}
			c.BackendPassword = value{w.attrs["password"], w.at(file), ""}
		}
		b, err := mycatHost(c, w, file, "writeHost")
		if err != nil {
			return err
		}
		if i > 0 && a["switchType"] != "-1" && !b.NoMaster {
			b.Candidate = true
			b.Notes = append(b.Notes, "a standby writeHost: Mycat switched to it first")
		}
		for _, r := range w.all("readHost") {
			if _, err := mycatHost(c, r, file, "readHost"); err != nil {
				return err
			}
			if r.attrs["user"] != "" && r.attrs["user"] != w.attrs["user"] {
				p.skip(r.at(file), "readHost "+r.attrs["host"]+" user="+r.attrs["user"], "one backend account per application user on every server: "+w.attrs["user"])
			}
		}
	}
	return nil
}

// mycatHost adds (or completes) the backend a writeHost/readHost names.
func mycatHost(c *Cluster, h *xnode, file, kind string) (*Backend, error) {
	host, port, err := mycatURL(h.attrs["url"])
	if err != nil {
		return nil, h.errorf(file, "%s %s: url=%q: %v", kind, h.attrs["host"], h.attrs["url"], err)
	}
	weight := -1 // not given
	if w, ok := h.attrs["weight"]; ok && w != "" {
		if weight, err = strconv.Atoi(w); err != nil || weight < 0 {
			return nil, h.errorf(file, "weight=%q is not a number", w)
		}
	}
	b := c.backend(host, port)
	if b == nil {
		name := h.attrs["host"]
		if name == "" {
			name = host
		}
		c.Backends = append(c.Backends, Backend{Name: name, Host: host, Port: port, Weight: max(weight, 1)})
		b = &c.Backends[len(c.Backends)-1]
	} else {
		if weight >= 0 {
			b.Weight = weight
		}
		b.Notes = append(b.Notes, "Mycat's "+kind+" "+h.attrs["host"])
	}
	b.From = append(b.From, h.at(file))
	return b, nil
}

// mycatURL reads "host:port" or "jdbc:mysql://host:port[/db]".
func mycatURL(u string) (string, int, error) {
	u = strings.TrimPrefix(u, "jdbc:mysql://")
	u = strings.TrimPrefix(u, "jdbc:mariadb://")
	if i := strings.IndexAny(u, "/?"); i >= 0 {
		u = u[:i]
	}
	host, ps, err := net.SplitHostPort(u)
	if err != nil {
		return "", 0, fmt.Errorf("not host:port")
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, port, nil
}

// Why each server.xml system property is not carried over.
var mycatSystemSkipped = map[string]string{
	"charset":                       "the server's character set and the client's own apply, as with MySQL directly",
	"sequnceHandlerType":            "Mycat's global sequences are not a Switchyard feature: use AUTO_INCREMENT",
	"sequenceHandlerType":           "Mycat's global sequences are not a Switchyard feature: use AUTO_INCREMENT",
	"processors":                    "set threads (GOMAXPROCS) if needed",
	"processorExecutor":             "set threads (GOMAXPROCS) if needed",
	"useSqlStat":                    "statement statistics are always kept: SHOW QUERY STATS on the admin port",
	"useGlobleTableCheck":           "no global tables: nothing is sharded",
	"handleDistributedTransactions": "transactions run on one master: never distributed",
	"defaultSqlParser":              "Switchyard parses with the TiDB parser",
	"txIsolation":                   "the server's transaction_isolation applies",
	"frontWriteQueueSize":           "not needed",
	"maxPacketSize":                 "set max_allowed_packet",
	"idleTimeout":                   "clients' wait_timeout applies, as on the server",
	"useCompression":                "compression is not offered",
	"mutiNodeLimitType":             "no multi-node queries",
	"nonePasswordLogin":             "every user has a password",
	"bindIp":                        "",
	"serverPort":                    "",
	"managerPort":                   "",
}

func mycatServer(p *Plan, path string) error {
	root, file, err := readSource(p, path, "server", "Mycat's <mycat:server>", "Mycat server")
	if err != nil {
		return err
	}
	bind, port := "0.0.0.0", "8066"
	var from origin = root.at(file)
	if sys := root.first("system"); sys != nil {
		props := sys.properties()
		if v, ok := props["bindIp"]; ok {
			bind, from = v.text, v.at(file)
		}
		if v, ok := props["serverPort"]; ok {
			port, from = v.text, v.at(file)
		}
		if v, ok := props["managerPort"]; ok {
			p.AdminListen = value{"127.0.0.1:" + v.text, v.at(file), "Mycat's managerPort, on loopback: the admin port has its own account"}
		}
		names := make([]string, 0, len(props))
		for k := range props {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			why, known := mycatSystemSkipped[k]
			if known && why == "" {
				continue
			}
			if !known {
				why = "no Switchyard equivalent"
			}
			p.skip(props[k].at(file), k+"="+props[k].text, why)
		}
	}
	p.Listen = value{net.JoinHostPort(bind, port), from, "Mycat's bindIp:serverPort: applications keep their DSN"}
	for _, u := range root.all("user") {
		props := u.properties()
		name := u.attrs["name"]
		pw := props["password"]
		if name == "" || pw == nil {
			return u.errorf(file, "<user> needs a name and a password property")
		}
		user := User{Name: name, Password: pw.text, From: u.at(file)}
		if d := props["usingDecrypt"]; d != nil && d.text == "1" {
			user.Password = "${SWITCHYARD_" + envName(name) + "_PASSWORD}"
			user.Note = "the password in server.xml is encrypted: set SWITCHYARD_" + envName(name) + "_PASSWORD"
		}
		if ro := props["readOnly"]; ro != nil && ro.text == "true" {
			p.skip(ro.at(file), "user "+name+" readOnly=true", "Switchyard has no read-only users: give this user a backend_user with SELECT only")
		}
		if s := props["schemas"]; s != nil {
			mycatUserSchemas(p, &user, s, file)
		}
		p.Users = append(p.Users, user)
	}
	for _, f := range root.all("firewall") {
		p.skip(f.at(file), "firewall", "restrict the listener with the host firewall, or the backend accounts' host part")
	}
	return nil
}

// mycatUserSchemas: a user starts on the cluster of its first schema;
// statements naming the others' databases go to theirs, under the same
// backend account, which must then exist on each.
func mycatUserSchemas(p *Plan, u *User, list *xnode, file string) {
	var clusters []*Cluster
	for _, name := range strings.Split(list.text, ",") {
		for _, s := range p.Schemas {
			if c := p.cluster(s.Cluster); strings.EqualFold(s.Name, strings.TrimSpace(name)) && !slices.Contains(clusters, c) {
				clusters = append(clusters, c)
			}
		}
	}
	if len(clusters) == 0 {
		return
	}
	u.Cluster = clusters[0].Name
	if strings.Contains(list.text, ",") {
		p.skip(list.at(file), "user "+u.Name+" schemas="+list.text, "access to databases is the backend account's GRANTs")
	}
	for _, c := range clusters[1:] {
		if c.BackendUser.v != clusters[0].BackendUser.v {
			p.skip(list.at(file), fmt.Sprintf("user %s on cluster %s as %s", u.Name, c.Name, c.BackendUser.v),
				fmt.Sprintf("one backend account per user: %s uses %s (cluster %s's) on every cluster; create it on %s", u.Name, clusters[0].BackendUser.v, clusters[0].Name, c.Name))
		}
	}
}

// envName turns a user name into an environment variable part.
func envName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, s)
}
