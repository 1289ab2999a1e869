# The local panel: LCD and the PC monitor line.
