"""`python -m logitlab.seed`: the teaching notebook's NumPy-vs-PyTorch comparisons, reproduced."""

from logitlab.notebook.demo import main

if __name__ == "__main__":
    main()
