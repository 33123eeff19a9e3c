"""Update rules for learning agents, one readable file each."""
