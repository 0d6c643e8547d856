package importer

import "errors"

// Files names the source files of one import ("" when absent).
type Files struct {
	MHA                      []string // app1.cnf, app2.cnf …: one cluster each
	MHADefault               string   // masterha_default.cnf, shared by them
	MycatSchema, MycatServer string   // schema.xml, server.xml
	MycatDataHost            string   // import only this dataHost ("": every one)
	AmoebaDBServers, Amoeba  string   // dbServers.xml, amoeba.xml
}

// Import reads the files into a plan: MHA first (it knows the servers'
// failover roles; one cluster per application config), then the proxy's
// files (listener, users, read weights, and for Mycat one cluster per
// dataHost, joined to the MHA cluster holding the same servers).
func Import(f Files) (*Plan, error) {
	if len(f.MHA) == 0 && f.MycatSchema == "" && f.AmoebaDBServers == "" {
		return nil, errors.New("nothing to import: give an MHA app1.cnf, a Mycat schema.xml or an Amoeba dbServers.xml")
	}
	if f.MHADefault != "" && len(f.MHA) == 0 {
		return nil, errors.New("masterha_default.cnf needs the application's app1.cnf too")
	}
	p := &Plan{}
	for _, app := range f.MHA {
		if err := ReadMHA(p, app, f.MHADefault); err != nil {
			return nil, err
		}
	}
	if f.MycatSchema != "" {
		if err := ReadMycat(p, f.MycatSchema, f.MycatServer, f.MycatDataHost); err != nil {
			return nil, err
		}
	} else if f.MycatServer != "" {
		return nil, errors.New("server.xml needs Mycat's schema.xml too (it names the servers)")
	}
	if f.AmoebaDBServers != "" {
		if err := ReadAmoeba(p, f.AmoebaDBServers, f.Amoeba); err != nil {
			return nil, err
		}
	} else if f.Amoeba != "" {
		return nil, errors.New("amoeba.xml needs Amoeba's dbServers.xml too (it names the servers)")
	}
	p.finish()
	return p, nil
}
