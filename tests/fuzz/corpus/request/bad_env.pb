
:PATH=/x:1A=b
main.pyx