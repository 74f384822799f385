"""Planning through world models: batched CEM, the paper's offline protocols, closed-loop control."""
