"""Training dynamics: gradient descent on the population loss from many starts, basin
fractions, and the paper's minibatch experiments."""
