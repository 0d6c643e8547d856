// Package importer turns the configuration files of the tools Switchyard
// replaces into a commented switchyard.yaml: MHA's app1.cnf (with its
// global masterha_default.cnf), Mycat 1.6's schema.xml and server.xml,
// and Amoeba's dbServers.xml and amoeba.xml.
//
// Each reader fills one Plan; Render writes it as YAML in which every
// setting says where it came from, and every source setting that does not
// map (sharding rules, SSH settings Switchyard no longer needs) is listed
// as a comment saying why. Malformed or unknown input is an *InputError
// naming the file and line. The package reads files and returns text: it
// touches no server and no socket, and imports only conf (to check that
// what it writes is a valid config).
package importer
