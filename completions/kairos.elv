
use builtin;
use str;

set edit:completion:arg-completer[kairos] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'kairos'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'kairos'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand run 'Run a workflow and write its ledger'
            cand validate 'Parse a workflow and run every static check, without running anything'
            cand replay 'Rebuild a run''s state from its ledger, or re-drive a workflow on the recorded results'
            cand diff 'Show where and how two ledgers differ'
            cand keygen 'Make an Ed25519 signing key pair'
            cand sign 'Write a signature envelope (in-toto/DSSE) for a ledger'
            cand verify 'Check a ledger''s format, chain and signatures'
            cand graph 'Print the workflow graph as Mermaid or Graphviz DOT'
            cand generate 'Write completions, man pages and JSON Schemas (for maintainers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'kairos;run'= {
            cand -j 'Worker threads for waiting work (default: the number of CPUs, at least 4)'
            cand --jobs 'Worker threads for waiting work (default: the number of CPUs, at least 4)'
            cand --net-jobs 'Network calls running at once (default: 64, or the workflow''s `network.max_concurrent` if lower); they do not take `--jobs` workers'
            cand --seed 'RNG seed (overrides the workflow''s `seed`)'
            cand -i 'Set an input (repeatable)'
            cand --input 'Set an input (repeatable)'
            cand --ledger 'Where to write the ledger; must not exist (default: .kairos/runs/NAME/NNNN.jsonl, the next free number)'
            cand --format 'Output format'
            cand --policy 'An organisation policy (a YAML file holding one policy mapping): the run gets what both it and the workflow allow'
            cand --approve 'Approve this approval node (repeatable)'
            cand --reject 'Reject this approval node (repeatable)'
            cand --approver 'Who decides (recorded; checked against the policy''s `approvers`)'
            cand --reason 'Why (recorded with the decision)'
            cand --resume 'Continue a paused, interrupted or crashed run in this ledger (same workflow, inputs, seed and policy); committed results are reused, the rest runs'
            cand --junit 'Write a JUnit XML report of the run here (one test case per node instance), for CI test reporters; replaced if it exists'
            cand --trace 'Write a Chrome trace event file of the run here (one slice per call attempt, per thread), for Perfetto or chrome://tracing; replaced if it exists'
            cand --executor 'Where `shell` calls run: here, or one batch job per call on a Slurm cluster (settings from the `executor:` block; see docs/executors.md). Overrides the block''s `kind`'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kairos;validate'= {
            cand --format 'Output format'
            cand --policy 'An organisation policy to check the workflows against (as `kairos run --policy`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kairos;replay'= {
            cand --until 'The state as of this event (its `seq`)'
            cand --node 'Print this node''s full recorded output, raw (text as is, other values as JSON; all JSON with `--format json`)'
            cand --against 'Re-drive this (changed) workflow on the recorded results and report the first divergence from the recorded run'
            cand --format 'Output format'
            cand --check 'Re-drive the embedded workflow on the recorded results (no tool runs) and require the regenerated ledger to be byte-identical'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kairos;diff'= {
            cand --format 'Output format'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kairos;keygen'= {
            cand --out 'Base name of the key files: writes NAME.key, NAME.pub and NAME.pub.ssh'
            cand --comment 'Comment of the `ssh-ed25519` line (default: the file name of NAME)'
            cand --format 'Output format'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kairos;sign'= {
            cand --key 'Ed25519 private key file: PKCS#8 PEM (`kairos keygen`, `openssl genpkey -algorithm ed25519`) or an unencrypted OpenSSH key (`ssh-keygen -t ed25519`). KAIROS_SIGNING_KEY may hold the path or the PEM text itself (a CI secret)'
            cand --envelope 'Where to write the envelope (default: LEDGER.intoto.json)'
            cand --format 'Output format'
            cand --ssh 'Also write LEDGER.sig, an SSHSIG signature over the ledger bytes (namespace `ledger@kairos`) that `ssh-keygen -Y verify` checks'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kairos;verify'= {
            cand --key 'A trusted public key: SPKI PEM (`NAME.pub`, `openssl pkey -pubout`) or OpenSSH `ssh-ed25519` lines. Repeatable'
            cand --allowed-signers 'An OpenSSH allowed_signers file (`PRINCIPALS [OPTIONS] ssh-ed25519 KEY`); a key with `namespaces=` must allow `ledger@kairos`'
            cand --workflow 'Check that the ledger ran this workflow file (its SHA-256)'
            cand --envelope 'The envelope (default: LEDGER.intoto.json)'
            cand --ssh-signature 'The SSH signature (default: LEDGER.sig)'
            cand --format 'Output format'
            cand --require-signature 'Fail unless a trusted key signed the ledger (envelope or SSH signature)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kairos;graph'= {
            cand --format 'Output format'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kairos;generate'= {
            cand --out 'Directory that receives `completions/`, `man/` and `schemas/`'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'kairos;help'= {
            cand run 'Run a workflow and write its ledger'
            cand validate 'Parse a workflow and run every static check, without running anything'
            cand replay 'Rebuild a run''s state from its ledger, or re-drive a workflow on the recorded results'
            cand diff 'Show where and how two ledgers differ'
            cand keygen 'Make an Ed25519 signing key pair'
            cand sign 'Write a signature envelope (in-toto/DSSE) for a ledger'
            cand verify 'Check a ledger''s format, chain and signatures'
            cand graph 'Print the workflow graph as Mermaid or Graphviz DOT'
            cand generate 'Write completions, man pages and JSON Schemas (for maintainers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'kairos;help;run'= {
        }
        &'kairos;help;validate'= {
        }
        &'kairos;help;replay'= {
        }
        &'kairos;help;diff'= {
        }
        &'kairos;help;keygen'= {
        }
        &'kairos;help;sign'= {
        }
        &'kairos;help;verify'= {
        }
        &'kairos;help;graph'= {
        }
        &'kairos;help;generate'= {
        }
        &'kairos;help;help'= {
        }
    ]
    $completions[$command]
}
