package importer

import "errors"

// Files names the source files of one import ("" when absent).
type Files struct {
	MHA, MHADefault          string // app1.cnf, masterha_default.cnf
	MycatSchema, MycatServer string // schema.xml, server.xml
	MycatDataHost            string // which dataHost when schema.xml has several
	AmoebaDBServers, Amoeba  string // dbServers.xml, amoeba.xml
}

// Import reads the files into a plan: MHA first (it knows the servers'
// failover roles), then the proxy's files (listener, users, read weights).
func Import(f Files) (*Plan, error) {
	if f.MHA == "" && f.MycatSchema == "" && f.AmoebaDBServers == "" {
		return nil, errors.New("nothing to import: give an MHA app1.cnf, a Mycat schema.xml or an Amoeba dbServers.xml")
	}
	if f.MHADefault != "" && f.MHA == "" {
		return nil, errors.New("masterha_default.cnf needs the application's app1.cnf too")
	}
	p := &Plan{}
	if f.MHA != "" {
		if err := ReadMHA(p, f.MHA, f.MHADefault); err != nil {
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
	return p, nil
}
