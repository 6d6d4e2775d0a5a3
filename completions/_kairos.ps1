
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'kairos' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'kairos'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'kairos' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a workflow and write its ledger')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Parse a workflow and run every static check, without running anything')
            [CompletionResult]::new('replay', 'replay', [CompletionResultType]::ParameterValue, 'Rebuild a run''s state from its ledger, or re-drive a workflow on the recorded results')
            [CompletionResult]::new('diff', 'diff', [CompletionResultType]::ParameterValue, 'Show where and how two ledgers differ')
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Make an Ed25519 signing key pair')
            [CompletionResult]::new('sign', 'sign', [CompletionResultType]::ParameterValue, 'Write a signature envelope (in-toto/DSSE) for a ledger')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check a ledger''s format, chain and signatures')
            [CompletionResult]::new('graph', 'graph', [CompletionResultType]::ParameterValue, 'Print the workflow graph as Mermaid or Graphviz DOT')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Write completions, man pages and JSON Schemas (for maintainers)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'kairos;run' {
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Worker threads for waiting work (default: the number of CPUs, at least 4)')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Worker threads for waiting work (default: the number of CPUs, at least 4)')
            [CompletionResult]::new('--net-jobs', '--net-jobs', [CompletionResultType]::ParameterName, 'Network calls running at once (default: 64, or the workflow''s `network.max_concurrent` if lower); they do not take `--jobs` workers')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'RNG seed (overrides the workflow''s `seed`)')
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'Set an input (repeatable)')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'Set an input (repeatable)')
            [CompletionResult]::new('--ledger', '--ledger', [CompletionResultType]::ParameterName, 'Where to write the ledger; must not exist (default: .kairos/runs/NAME/NNNN.jsonl, the next free number)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'An organisation policy (a YAML file holding one policy mapping): the run gets what both it and the workflow allow')
            [CompletionResult]::new('--approve', '--approve', [CompletionResultType]::ParameterName, 'Approve this approval node (repeatable)')
            [CompletionResult]::new('--reject', '--reject', [CompletionResultType]::ParameterName, 'Reject this approval node (repeatable)')
            [CompletionResult]::new('--approver', '--approver', [CompletionResultType]::ParameterName, 'Who decides (recorded; checked against the policy''s `approvers`)')
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why (recorded with the decision)')
            [CompletionResult]::new('--resume', '--resume', [CompletionResultType]::ParameterName, 'Continue a paused, interrupted or crashed run in this ledger (same workflow, inputs, seed and policy); committed results are reused, the rest runs')
            [CompletionResult]::new('--junit', '--junit', [CompletionResultType]::ParameterName, 'Write a JUnit XML report of the run here (one test case per node instance), for CI test reporters; replaced if it exists')
            [CompletionResult]::new('--trace', '--trace', [CompletionResultType]::ParameterName, 'Write a Chrome trace event file of the run here (one slice per call attempt, per thread), for Perfetto or chrome://tracing; replaced if it exists')
            [CompletionResult]::new('--executor', '--executor', [CompletionResultType]::ParameterName, 'Where `shell` calls run: here, or one batch job per call on a Slurm cluster (settings from the `executor:` block; see docs/executors.md). Overrides the block''s `kind`')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kairos;validate' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--policy', '--policy', [CompletionResultType]::ParameterName, 'An organisation policy to check the workflows against (as `kairos run --policy`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kairos;replay' {
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'The state as of this event (its `seq`)')
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Print this node''s full recorded output, raw (text as is, other values as JSON; all JSON with `--format json`)')
            [CompletionResult]::new('--against', '--against', [CompletionResultType]::ParameterName, 'Re-drive this (changed) workflow on the recorded results and report the first divergence from the recorded run')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Re-drive the embedded workflow on the recorded results (no tool runs) and require the regenerated ledger to be byte-identical')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kairos;diff' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kairos;keygen' {
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Base name of the key files: writes NAME.key, NAME.pub and NAME.pub.ssh')
            [CompletionResult]::new('--comment', '--comment', [CompletionResultType]::ParameterName, 'Comment of the `ssh-ed25519` line (default: the file name of NAME)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kairos;sign' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Ed25519 private key file: PKCS#8 PEM (`kairos keygen`, `openssl genpkey -algorithm ed25519`) or an unencrypted OpenSSH key (`ssh-keygen -t ed25519`). KAIROS_SIGNING_KEY may hold the path or the PEM text itself (a CI secret)')
            [CompletionResult]::new('--envelope', '--envelope', [CompletionResultType]::ParameterName, 'Where to write the envelope (default: LEDGER.intoto.json)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--ssh', '--ssh', [CompletionResultType]::ParameterName, 'Also write LEDGER.sig, an SSHSIG signature over the ledger bytes (namespace `ledger@kairos`) that `ssh-keygen -Y verify` checks')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kairos;verify' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'A trusted public key: SPKI PEM (`NAME.pub`, `openssl pkey -pubout`) or OpenSSH `ssh-ed25519` lines. Repeatable')
            [CompletionResult]::new('--allowed-signers', '--allowed-signers', [CompletionResultType]::ParameterName, 'An OpenSSH allowed_signers file (`PRINCIPALS [OPTIONS] ssh-ed25519 KEY`); a key with `namespaces=` must allow `ledger@kairos`')
            [CompletionResult]::new('--workflow', '--workflow', [CompletionResultType]::ParameterName, 'Check that the ledger ran this workflow file (its SHA-256)')
            [CompletionResult]::new('--envelope', '--envelope', [CompletionResultType]::ParameterName, 'The envelope (default: LEDGER.intoto.json)')
            [CompletionResult]::new('--ssh-signature', '--ssh-signature', [CompletionResultType]::ParameterName, 'The SSH signature (default: LEDGER.sig)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--require-signature', '--require-signature', [CompletionResultType]::ParameterName, 'Fail unless a trusted key signed the ledger (envelope or SSH signature)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kairos;graph' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kairos;generate' {
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Directory that receives `completions/`, `man/` and `schemas/`')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'kairos;help' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a workflow and write its ledger')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Parse a workflow and run every static check, without running anything')
            [CompletionResult]::new('replay', 'replay', [CompletionResultType]::ParameterValue, 'Rebuild a run''s state from its ledger, or re-drive a workflow on the recorded results')
            [CompletionResult]::new('diff', 'diff', [CompletionResultType]::ParameterValue, 'Show where and how two ledgers differ')
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Make an Ed25519 signing key pair')
            [CompletionResult]::new('sign', 'sign', [CompletionResultType]::ParameterValue, 'Write a signature envelope (in-toto/DSSE) for a ledger')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check a ledger''s format, chain and signatures')
            [CompletionResult]::new('graph', 'graph', [CompletionResultType]::ParameterValue, 'Print the workflow graph as Mermaid or Graphviz DOT')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Write completions, man pages and JSON Schemas (for maintainers)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'kairos;help;run' {
            break
        }
        'kairos;help;validate' {
            break
        }
        'kairos;help;replay' {
            break
        }
        'kairos;help;diff' {
            break
        }
        'kairos;help;keygen' {
            break
        }
        'kairos;help;sign' {
            break
        }
        'kairos;help;verify' {
            break
        }
        'kairos;help;graph' {
            break
        }
        'kairos;help;generate' {
            break
        }
        'kairos;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
