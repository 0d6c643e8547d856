# The driver scenario with DBD::MariaDB (server-side prepared statements):
# one line per step.
use strict;
use warnings;
use DBI;
use Digest::MD5 qw(md5_hex);
binmode(STDOUT, ":utf8");
$| = 1;
my ($host, $port, $user, $pass) = @ARGV;
sub out { print "$_[0]: $_[1]\n" }
sub err { my $h = shift; return $h->err . " " . $h->state }
sub j { return "[" . join(",", map { defined $_ ? "\"$_\"" : "null" } @_) . "]" }

my %attr = (RaiseError => 0, PrintError => 0, mariadb_server_prepare => 1, mariadb_multi_statements => 1);
my $d = DBI->connect("DBI:MariaDB:host=$host;port=$port", $user, $pass, \%attr) or die $DBI::errstr;
out("connect-nodb", $d->selectrow_array("SELECT 1"));
$d = DBI->connect("DBI:MariaDB:database=drv;host=$host;port=$port", $user, $pass, \%attr) or die $DBI::errstr;
out("connect-db", $d->selectrow_array("SELECT DATABASE()"));
$d->do("INSERT INTO t (id, name) VALUES (10, ?)", undef, "\x{e9}\x{6f22}\x{5b57}\x{1f600}");
out("utf8mb4", $d->selectrow_array("SELECT name FROM t WHERE id = 10"));

my $st = $d->prepare("INSERT INTO t (id, name, data, n) VALUES (?, ?, ?, ?)");
my $affected = 0;
$affected += $st->execute(1, "a", undef, "1.50");
$st->bind_param(3, "0123456789abcdef" x 6400, DBI::SQL_BLOB);
$affected += $st->execute(2, undef, "0123456789abcdef" x 6400, undef);
out("prepared-reused", $affected);
my $q = $d->prepare("SELECT id, name, LENGTH(data), MD5(data), n FROM t WHERE id IN (?, ?) ORDER BY id");
$q->execute(1, 2);
while (my @r = $q->fetchrow_array) { out("prepared-row", j(@r)) }

$d->begin_work; $d->do("INSERT INTO t (id) VALUES (3)"); $d->rollback;
out("rollback", $d->selectrow_array("SELECT COUNT(*) FROM t"));
$d->begin_work; $d->do("INSERT INTO t (id) VALUES (3)"); $d->commit;
out("commit", $d->selectrow_array("SELECT COUNT(*) FROM t"));

for my $pair (["multi", "SELECT 1 AS a; SELECT 2 AS b, 'x' AS c"], ["call", "CALL two_results()"]) {
    my ($step, $sql) = @$pair;
    my $sth = $d->prepare($sql, { mariadb_server_prepare => 0 });
    $sth->execute;
    do {
        my $rows = $sth->fetchall_arrayref;
        out($step, "[" . join(",", map { j(@$_) } @$rows) . "]") if $rows && @$rows;
    } while ($sth->more_results);
}

$d->do("SELECT * FROM nope"); out("error-table", err($d));
$d->do("INSERT INTO t (id) VALUES (1)"); out("error-dup", err($d));

my ($n, $sum) = (0, 0);
for my $r (@{ $d->selectall_arrayref("SELECT seq, REPEAT('x', 100) FROM seq_1_to_20000") }) { $n++; $sum += $r->[0] }
out("large", "$n $sum");

out("cancel-id", $d->selectrow_array("SELECT CONNECTION_ID()"));
my ($r) = $d->selectrow_array("SELECT SLEEP(5)");
out("cancel", defined $r ? "result $r" : err($d));
out("after-cancel", $d->selectrow_array("SELECT 1"));
