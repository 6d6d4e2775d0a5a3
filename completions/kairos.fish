# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kairos_global_optspecs
    string join \n h/help V/version
end

function __fish_kairos_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kairos_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kairos_using_subcommand
    set -l cmd (__fish_kairos_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kairos -n "__fish_kairos_needs_command" -s h -l help -d 'Print help'
complete -c kairos -n "__fish_kairos_needs_command" -s V -l version -d 'Print version'
complete -c kairos -n "__fish_kairos_needs_command" -f -a "run" -d 'Run a workflow and write its ledger'
complete -c kairos -n "__fish_kairos_needs_command" -f -a "validate" -d 'Parse a workflow and run every static check, without running anything'
complete -c kairos -n "__fish_kairos_needs_command" -f -a "replay" -d 'Rebuild a run\'s state from its ledger, or re-drive a workflow on the recorded results'
complete -c kairos -n "__fish_kairos_needs_command" -f -a "diff" -d 'Show where and how two ledgers differ'
complete -c kairos -n "__fish_kairos_needs_command" -f -a "keygen" -d 'Make an Ed25519 signing key pair'
complete -c kairos -n "__fish_kairos_needs_command" -f -a "sign" -d 'Write a signature envelope (in-toto/DSSE) for a ledger'
complete -c kairos -n "__fish_kairos_needs_command" -f -a "verify" -d 'Check a ledger\'s format, chain and signatures'
complete -c kairos -n "__fish_kairos_needs_command" -f -a "graph" -d 'Print the workflow graph as Mermaid or Graphviz DOT'
complete -c kairos -n "__fish_kairos_needs_command" -f -a "generate" -d 'Write completions, man pages and JSON Schemas (for maintainers)'
complete -c kairos -n "__fish_kairos_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kairos -n "__fish_kairos_using_subcommand run" -s j -l jobs -d 'Worker threads for waiting work (default: the number of CPUs, at least 4)' -r
complete -c kairos -n "__fish_kairos_using_subcommand run" -l net-jobs -d 'Network calls running at once (default: 64, or the workflow\'s `network.max_concurrent` if lower); they do not take `--jobs` workers' -r
complete -c kairos -n "__fish_kairos_using_subcommand run" -l seed -d 'RNG seed (overrides the workflow\'s `seed`)' -r
complete -c kairos -n "__fish_kairos_using_subcommand run" -s i -l input -d 'Set an input (repeatable)' -r
complete -c kairos -n "__fish_kairos_using_subcommand run" -l ledger -d 'Where to write the ledger; must not exist (default: .kairos/runs/NAME/NNNN.jsonl, the next free number)' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand run" -l format -d 'Output format' -r -f -a "table\t'Text for people'
json\t'JSON for machines'"
complete -c kairos -n "__fish_kairos_using_subcommand run" -l policy -d 'An organisation policy (a YAML file holding one policy mapping): the run gets what both it and the workflow allow' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand run" -l approve -d 'Approve this approval node (repeatable)' -r
complete -c kairos -n "__fish_kairos_using_subcommand run" -l reject -d 'Reject this approval node (repeatable)' -r
complete -c kairos -n "__fish_kairos_using_subcommand run" -l approver -d 'Who decides (recorded; checked against the policy\'s `approvers`)' -r
complete -c kairos -n "__fish_kairos_using_subcommand run" -l reason -d 'Why (recorded with the decision)' -r
complete -c kairos -n "__fish_kairos_using_subcommand run" -l resume -d 'Continue a paused, interrupted or crashed run in this ledger (same workflow, inputs, seed and policy); committed results are reused, the rest runs' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand run" -l junit -d 'Write a JUnit XML report of the run here (one test case per node instance), for CI test reporters; replaced if it exists' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand run" -l trace -d 'Write a Chrome trace event file of the run here (one slice per call attempt, per thread), for Perfetto or chrome://tracing; replaced if it exists' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand run" -l executor -d 'Where `shell` calls run: here, or one batch job per call on a Slurm cluster (settings from the `executor:` block; see docs/executors.md). Overrides the block\'s `kind`' -r -f -a "local\t'This machine\'s worker threads (the default)'
slurm\t'A Slurm cluster: `sbatch`, one `squeue` per interval, results from a shared directory'"
complete -c kairos -n "__fish_kairos_using_subcommand run" -s q -l quiet -d 'Print nothing but errors'
complete -c kairos -n "__fish_kairos_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kairos -n "__fish_kairos_using_subcommand run" -s V -l version -d 'Print version'
complete -c kairos -n "__fish_kairos_using_subcommand validate" -l format -d 'Output format' -r -f -a "table\t'Text for people'
json\t'JSON for machines'"
complete -c kairos -n "__fish_kairos_using_subcommand validate" -l policy -d 'An organisation policy to check the workflows against (as `kairos run --policy`)' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kairos -n "__fish_kairos_using_subcommand validate" -s V -l version -d 'Print version'
complete -c kairos -n "__fish_kairos_using_subcommand replay" -l until -d 'The state as of this event (its `seq`)' -r
complete -c kairos -n "__fish_kairos_using_subcommand replay" -l node -d 'Print this node\'s full recorded output, raw (text as is, other values as JSON; all JSON with `--format json`)' -r
complete -c kairos -n "__fish_kairos_using_subcommand replay" -l against -d 'Re-drive this (changed) workflow on the recorded results and report the first divergence from the recorded run' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand replay" -l format -d 'Output format' -r -f -a "table\t'Text for people'
json\t'JSON for machines'"
complete -c kairos -n "__fish_kairos_using_subcommand replay" -l check -d 'Re-drive the embedded workflow on the recorded results (no tool runs) and require the regenerated ledger to be byte-identical'
complete -c kairos -n "__fish_kairos_using_subcommand replay" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kairos -n "__fish_kairos_using_subcommand replay" -s V -l version -d 'Print version'
complete -c kairos -n "__fish_kairos_using_subcommand diff" -l format -d 'Output format' -r -f -a "table\t'Text for people'
json\t'JSON for machines'"
complete -c kairos -n "__fish_kairos_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kairos -n "__fish_kairos_using_subcommand diff" -s V -l version -d 'Print version'
complete -c kairos -n "__fish_kairos_using_subcommand keygen" -l out -d 'Base name of the key files: writes NAME.key, NAME.pub and NAME.pub.ssh' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand keygen" -l comment -d 'Comment of the `ssh-ed25519` line (default: the file name of NAME)' -r
complete -c kairos -n "__fish_kairos_using_subcommand keygen" -l format -d 'Output format' -r -f -a "table\t'Text for people'
json\t'JSON for machines'"
complete -c kairos -n "__fish_kairos_using_subcommand keygen" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kairos -n "__fish_kairos_using_subcommand keygen" -s V -l version -d 'Print version'
complete -c kairos -n "__fish_kairos_using_subcommand sign" -l key -d 'Ed25519 private key file: PKCS#8 PEM (`kairos keygen`, `openssl genpkey -algorithm ed25519`) or an unencrypted OpenSSH key (`ssh-keygen -t ed25519`). KAIROS_SIGNING_KEY may hold the path or the PEM text itself (a CI secret)' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand sign" -l envelope -d 'Where to write the envelope (default: LEDGER.intoto.json)' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand sign" -l format -d 'Output format' -r -f -a "table\t'Text for people'
json\t'JSON for machines'"
complete -c kairos -n "__fish_kairos_using_subcommand sign" -l ssh -d 'Also write LEDGER.sig, an SSHSIG signature over the ledger bytes (namespace `ledger@kairos`) that `ssh-keygen -Y verify` checks'
complete -c kairos -n "__fish_kairos_using_subcommand sign" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kairos -n "__fish_kairos_using_subcommand sign" -s V -l version -d 'Print version'
complete -c kairos -n "__fish_kairos_using_subcommand verify" -l key -d 'A trusted public key: SPKI PEM (`NAME.pub`, `openssl pkey -pubout`) or OpenSSH `ssh-ed25519` lines. Repeatable' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand verify" -l allowed-signers -d 'An OpenSSH allowed_signers file (`PRINCIPALS [OPTIONS] ssh-ed25519 KEY`); a key with `namespaces=` must allow `ledger@kairos`' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand verify" -l workflow -d 'Check that the ledger ran this workflow file (its SHA-256)' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand verify" -l envelope -d 'The envelope (default: LEDGER.intoto.json)' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand verify" -l ssh-signature -d 'The SSH signature (default: LEDGER.sig)' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand verify" -l format -d 'Output format' -r -f -a "table\t'Text for people'
json\t'JSON for machines'"
complete -c kairos -n "__fish_kairos_using_subcommand verify" -l require-signature -d 'Fail unless a trusted key signed the ledger (envelope or SSH signature)'
complete -c kairos -n "__fish_kairos_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kairos -n "__fish_kairos_using_subcommand verify" -s V -l version -d 'Print version'
complete -c kairos -n "__fish_kairos_using_subcommand graph" -l format -d 'Output format' -r -f -a "mermaid\t'Mermaid flowchart (renders on GitHub and GitLab)'
dot\t'Graphviz DOT (`| dot -Tsvg`)'
json\t'JSON for programs: `{"workflow", "nodes": [{"id", "kind", "tool"}], "edges": [{"from", "to", "kind"}]}`'"
complete -c kairos -n "__fish_kairos_using_subcommand graph" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kairos -n "__fish_kairos_using_subcommand graph" -s V -l version -d 'Print version'
complete -c kairos -n "__fish_kairos_using_subcommand generate" -l out -d 'Directory that receives `completions/`, `man/` and `schemas/`' -r -F
complete -c kairos -n "__fish_kairos_using_subcommand generate" -s h -l help -d 'Print help'
complete -c kairos -n "__fish_kairos_using_subcommand generate" -s V -l version -d 'Print version'
complete -c kairos -n "__fish_kairos_using_subcommand help; and not __fish_seen_subcommand_from run validate replay diff keygen sign verify graph generate help" -f -a "run" -d 'Run a workflow and write its ledger'
complete -c kairos -n "__fish_kairos_using_subcommand help; and not __fish_seen_subcommand_from run validate replay diff keygen sign verify graph generate help" -f -a "validate" -d 'Parse a workflow and run every static check, without running anything'
complete -c kairos -n "__fish_kairos_using_subcommand help; and not __fish_seen_subcommand_from run validate replay diff keygen sign verify graph generate help" -f -a "replay" -d 'Rebuild a run\'s state from its ledger, or re-drive a workflow on the recorded results'
complete -c kairos -n "__fish_kairos_using_subcommand help; and not __fish_seen_subcommand_from run validate replay diff keygen sign verify graph generate help" -f -a "diff" -d 'Show where and how two ledgers differ'
complete -c kairos -n "__fish_kairos_using_subcommand help; and not __fish_seen_subcommand_from run validate replay diff keygen sign verify graph generate help" -f -a "keygen" -d 'Make an Ed25519 signing key pair'
complete -c kairos -n "__fish_kairos_using_subcommand help; and not __fish_seen_subcommand_from run validate replay diff keygen sign verify graph generate help" -f -a "sign" -d 'Write a signature envelope (in-toto/DSSE) for a ledger'
complete -c kairos -n "__fish_kairos_using_subcommand help; and not __fish_seen_subcommand_from run validate replay diff keygen sign verify graph generate help" -f -a "verify" -d 'Check a ledger\'s format, chain and signatures'
complete -c kairos -n "__fish_kairos_using_subcommand help; and not __fish_seen_subcommand_from run validate replay diff keygen sign verify graph generate help" -f -a "graph" -d 'Print the workflow graph as Mermaid or Graphviz DOT'
complete -c kairos -n "__fish_kairos_using_subcommand help; and not __fish_seen_subcommand_from run validate replay diff keygen sign verify graph generate help" -f -a "generate" -d 'Write completions, man pages and JSON Schemas (for maintainers)'
complete -c kairos -n "__fish_kairos_using_subcommand help; and not __fish_seen_subcommand_from run validate replay diff keygen sign verify graph generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
