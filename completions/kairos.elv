
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
            cand validate 'Parse a workflow and run every static check, without running anything'
            cand graph 'Print the workflow graph as Mermaid or Graphviz DOT'
            cand generate 'Write completions, man pages and JSON Schemas (for maintainers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'kairos;validate'= {
            cand --format 'Output format'
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
            cand validate 'Parse a workflow and run every static check, without running anything'
            cand graph 'Print the workflow graph as Mermaid or Graphviz DOT'
            cand generate 'Write completions, man pages and JSON Schemas (for maintainers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'kairos;help;validate'= {
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
