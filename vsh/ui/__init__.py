"""What the commands share for talking to a person: the editor, XML output, the console."""
